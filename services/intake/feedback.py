"""Feedback to the reporting partner: its own reports listed, and a report withdrawn.

A partner sees only its own reports, and of them only the public status and public note
(``public_state``, kept from ``public_history`` by a trigger, migration 0006): never another
partner's data, internal reasons or who the responders are (DOMAIN.md).

- **Listing** is a feed ordered by when intake recorded each report's latest change
  (``changed_at``, then the incident id), paged by an opaque keyset cursor, so a page never
  repeats or skips a report that did not change meanwhile, and a partner that polls with
  ``since`` sees every change. Open311 lists by when a request was received, as GeoReport v2
  does (:func:`open311_requests`).
- **Withdrawing** is a request: intake records it and publishes IncidentWithdrawalRequested
  through its outbox in one transaction; triage applies it through its workflow (the incident
  becomes cancelled, notify cancels the messages). Intake refuses at once what it knows is
  closed (resolved, merged into another report) and answers a repeat with the first request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from uuid import UUID

import asyncpg
from prometheus_client import Counter

from schemas.events import IncidentStatus, IncidentWithdrawalRequested
from schemas.urgency import is_urgent
from services.common.observability import current_traceparent
from services.common.outbox import enqueue, event_message
from services.common.settings import Settings
from services.intake.partners import Partner

PublicStatus = Literal[
    "received",
    "needs_review",
    "reported",
    "triaged",
    "acknowledged",
    "in_progress",
    "on_hold",
    "reopened",
    "merged",
    "resolved",
    "cancelled",
]
"""What a partner may read as the status of its report: intake's ``received``, triage's
``needs_review`` (triaged, waiting for a person), and the contract's statuses."""
assert set(get_args(IncidentStatus)) <= set(get_args(PublicStatus))  # one list, checked

CLOSED: frozenset[str] = frozenset({"resolved", "merged", "cancelled"})
"""Closed for the partner: nothing more will happen to the report (Open311 ``closed``)."""
UNWITHDRAWABLE: frozenset[str] = frozenset({"resolved", "merged"})
"""Closed by someone else: withdrawing comes too late (a 409)."""
WITHDRAWN_NOTE = "ingetrokken door de melder"

MAX_PAGE = 200
MAX_CURSOR = 50
OPEN311_MAX_DAYS = 90  # GeoReport v2: the default window, and the longest one served
OPEN311_MAX_RESULTS = 1000  # GeoReport v2: "limit to 1000 requests"

WITHDRAWALS = Counter(
    "veilig_intake_withdrawals_total",
    "Withdrawals by reporting partners, by result (requested, repeated, closed, not_found)",
    ["partner", "result"],
)


# --- the cursor ----------------------------------------------------------------------------


class BadCursor(ValueError):
    """A cursor this API did not hand out (or one that was altered)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last report's ``changed_at`` and incident id."""

    changed_at: datetime
    incident_id: UUID


CURSOR_PATTERN = r"^[0-9]{1,17}_[0-9a-f]{32}$"
"""A cursor: the position's ``changed_at`` in microseconds since 1970 (UTC), ``_``, its
incident id in hex. The OpenAPI document carries this pattern, and every string that matches
it is a position (a page after that moment), so a client's schema-valid cursor is never
refused."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(position: Position) -> str:
    micros = (position.changed_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{position.incident_id.hex}"


def decode_cursor(cursor: str) -> Position:
    """The position of a cursor from :func:`encode_cursor`; :class:`BadCursor` otherwise."""
    if re.fullmatch(CURSOR_PATTERN, cursor) is None:
        raise BadCursor("not a cursor of this API; start again without it")
    micros, incident_id = cursor.split("_")
    return Position(_EPOCH + timedelta(microseconds=int(micros)), UUID(hex=incident_id))


# --- listing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listed:
    incident_id: UUID
    external_id: str
    received_at: datetime
    status: str
    note: str | None
    at: datetime
    """When the latest status took effect (the history entry's time)."""
    changed_at: datetime
    category: str | None = None


async def list_reports(
    pool: asyncpg.Pool,
    partner: str,
    *,
    status: str | None,
    since: datetime | None,
    after: Position | None,
    limit: int,
) -> tuple[list[Listed], Position | None]:
    """One page of ``partner``'s reports in feed order, and where the next page starts (None
    when this is the last)."""
    # Only the conditions given, so that every shape of the query uses the feed's index.
    where = ["s.partner = $1"]
    args: list[object] = [partner]
    if status is not None:
        args.append(status)
        where.append(f"s.status = ${len(args)}")
    if since is not None:
        args.append(since)
        where.append(f"s.changed_at >= ${len(args)}")
    if after is not None:
        args += [after.changed_at, after.incident_id]
        where.append(f"(s.changed_at, s.incident_id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)  # one more tells whether there is a next page
    conditions = " AND ".join(where)  # fixed fragments; the values are parameters
    rows = await pool.fetch(
        "SELECT s.incident_id, r.external_id, r.received_at, s.status, s.note, s.at, "  # noqa: S608
        "s.changed_at FROM public_state s JOIN receipts r USING (incident_id) "
        f"WHERE {conditions} ORDER BY s.changed_at, s.incident_id LIMIT ${len(args)}",
        *args,
    )
    page = [Listed(**dict(row)) for row in rows[:limit]]
    more = len(rows) > limit
    return page, Position(page[-1].changed_at, page[-1].incident_id) if more else None


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""Moments before this are no moment of the platform: a bound on every date parameter."""
AHEAD = timedelta(minutes=10)  # clocks drift


def bounded_moment(name: str, moment: datetime, latest: datetime) -> datetime:
    """``moment`` in UTC if it lies from 2000 up to ``latest``; ValueError naming ``name``
    otherwise (also for what cannot be converted, such as year 1 at +01:00)."""
    if moment.utcoffset() is None:
        raise ValueError(f"{name} needs a time zone, e.g. 2026-11-24T00:00:00+01:00")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        moment = datetime.min.replace(tzinfo=UTC)
    if moment < EARLIEST:
        raise ValueError(f"{name} is before {EARLIEST.year}")
    if moment > latest:
        raise ValueError(f"{name} is in the future")
    return moment


def clamped_moment(moment: datetime) -> datetime:
    """``moment`` in UTC, no earlier than 2000: for a lower bound of a filter (``since``), where
    a moment before 2000 means from the beginning and one in the future finds nothing."""
    try:
        return max(moment.astimezone(UTC), EARLIEST)
    except OverflowError:  # year 1 at +01:00, year 9999 at -05:00
        return EARLIEST if moment.year < EARLIEST.year else datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """The received-at window of an Open311 listing: [start, end)."""

    start: datetime
    end: datetime


def open311_window(start: datetime | None, end: datetime | None, now: datetime) -> Window:
    """GeoReport v2's window: the last 90 days by default; one given bound sets the other 90
    days away; never longer than 90 days. ValueError says what is wrong."""
    span = timedelta(days=OPEN311_MAX_DAYS)
    if start is not None:
        start = bounded_moment("start_date", start, now + AHEAD)
    if end is not None:
        # "Until the end of today" is a fair thing to ask: a day ahead at most.
        end = bounded_moment("end_date", end, now + timedelta(days=1))
    if start is None:
        end = end or now
        start = end - span
    elif end is None:
        end = min(start + span, now)
    if end <= start:
        raise ValueError("end_date must be after start_date")
    if end - start > span:
        raise ValueError(f"at most {OPEN311_MAX_DAYS} days from start_date to end_date")
    return Window(start, end)


async def open311_requests(
    pool: asyncpg.Pool,
    partner: str,
    window: Window,
    statuses: frozenset[Literal["open", "closed"]],
) -> list[Listed]:
    """``partner``'s requests received in ``window``, newest first, at most 1000."""
    where = ["r.partner = $1", "r.received_at >= $2", "r.received_at < $3"]
    args: list[object] = [partner, window.start, window.end]
    if statuses == {"open"}:
        args.append(list(CLOSED))
        where.append(f"s.status <> ALL(${len(args)}::text[])")
    elif statuses == {"closed"}:
        args.append(list(CLOSED))
        where.append(f"s.status = ANY(${len(args)}::text[])")
    args.append(OPEN311_MAX_RESULTS)
    conditions = " AND ".join(where)  # fixed fragments; the values are parameters
    rows = await pool.fetch(
        "SELECT r.incident_id, r.external_id, r.received_at, s.status, s.note, s.at, "  # noqa: S608
        "s.changed_at, d.category FROM receipts r JOIN public_state s USING (incident_id) "
        "LEFT JOIN public_details d USING (incident_id) "
        f"WHERE {conditions} ORDER BY r.received_at DESC, r.incident_id LIMIT ${len(args)}",
        *args,
    )
    return [Listed(**dict(row)) for row in rows]


# --- withdrawing ---------------------------------------------------------------------------

WithdrawalResult = Literal["requested", "repeated", "closed", "not_found"]


@dataclass(frozen=True, slots=True)
class WithdrawalOutcome:
    result: WithdrawalResult
    external_id: str = ""
    reason: str = ""
    requested_at: datetime | None = None
    status: str = ""
    """The report's public status when it was refused as closed."""


async def withdraw(
    conn: asyncpg.Connection,
    settings: Settings,
    partner: Partner,
    incident_id: UUID,
    reason: str,
) -> WithdrawalOutcome:
    """Withdraw ``partner``'s report ``incident_id`` (one transaction): record the request and
    put its event in the outbox, or say why not. A repeat returns the first request."""
    async with conn.transaction():
        # Two withdrawals of one report at once: the second waits here and sees the first.
        # NO KEY UPDATE leaves the history's foreign-key checks on the receipt unblocked.
        receipt = await conn.fetchrow(
            "SELECT external_id FROM receipts WHERE incident_id = $1 AND partner = $2 "
            "FOR NO KEY UPDATE",
            incident_id,
            partner.code,
        )
        if receipt is None:
            return _counted(partner, WithdrawalOutcome("not_found"))
        external_id = receipt["external_id"]
        status = (
            await conn.fetchval(
                "SELECT status FROM public_state WHERE incident_id = $1", incident_id
            )
            or "received"
        )
        if status in UNWITHDRAWABLE:
            return _counted(partner, WithdrawalOutcome("closed", external_id, status=status))
        earlier = await conn.fetchrow(
            "SELECT reason, requested_at FROM withdrawals WHERE incident_id = $1", incident_id
        )
        if earlier is not None:
            return _counted(
                partner,
                WithdrawalOutcome(
                    "repeated", external_id, earlier["reason"], earlier["requested_at"]
                ),
            )
        now = datetime.now(UTC)
        event = IncidentWithdrawalRequested(
            event_id=uuid.uuid4(),
            incident_id=incident_id,
            occurred_at=now,
            recorded_at=now,
            producer="intake",
            partner=partner.code,
            external_id=external_id,
            reason=reason,
        )
        await conn.execute(
            "INSERT INTO withdrawals (incident_id, reason, requested_at, event_id) "
            "VALUES ($1, $2, $3, $4)",
            incident_id,
            reason,
            now,
            event.event_id,
        )
        # A P1/P2 keeps paging until triage cancels it: the request takes the urgent lane.
        # Only once triage has decided (public_details), so triage knows the incident.
        priority = await conn.fetchval(
            "SELECT priority FROM public_details WHERE incident_id = $1", incident_id
        )
        traceparent = current_traceparent()
        await enqueue(
            conn,
            [
                event_message(settings, event, traceparent=traceparent, lane=lane)
                for lane in ((False, True) if is_urgent(priority) else (False,))
            ],
        )
    return _counted(partner, WithdrawalOutcome("requested", external_id, reason, now))


def _counted(partner: Partner, outcome: WithdrawalOutcome) -> WithdrawalOutcome:
    WITHDRAWALS.labels(partner.code, outcome.result).inc()
    return outcome
