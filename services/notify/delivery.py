"""The delivery worker: sends due deliveries, records every attempt, schedules the next.

The retry schedule is the ``deliveries`` table, so a restart loses nothing. One round:

1. **claim** (short transaction): due rows (``pending`` and ``next_attempt_at`` passed, or
   ``in_flight`` with an expired lease) are taken with ``FOR UPDATE SKIP LOCKED``, marked
   ``in_flight`` with a lease and their attempt counted. A recipient's messages go out in
   order: a row waits while an earlier message to the same recipient about the same incident
   is still pending.
2. **send**, outside any transaction: the stored bytes under the message id as webhook-id
   (Standard Webhooks or CAP over the same signed webhook), or the stored payload as e-mail.
3. **record** (short transaction): the attempt, the new state, NotificationDispatched plus
   NotificationDelivered or NotificationFailed through the outbox; only if the lease is still
   ours (same attempt number), so a worker that lost its lease cannot overwrite a newer attempt.

A worker that dies between 1 and 3 leaves the row ``in_flight``; when the lease runs out any
worker takes it again, so the receiver may see that attempt twice, with the same webhook-id.
A worker that lives through a database blink hands back at once the leases it holds without
sending (an attempt the blink interrupted before anything went out, a claim whose reply was
lost): they need not wait out the lease.

Outcomes (:mod:`services.notify.retry`): 2xx delivered; 408, 429, 5xx, timeouts and refused
connections retried with exponential backoff and jitter, ``Retry-After`` honoured; other 4xx
failed at once; 410 (or an unknown mailbox) disables that channel and alerts ops. After the last
attempt the delivery is failed, and the recipient's acknowledgement timer, if any, escalates now.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from opentelemetry.trace import SpanKind
from prometheus_client import Counter

from schemas.events import (
    NotificationChannel,
    NotificationDelivered,
    NotificationDispatched,
    NotificationEvent,
    NotificationFailed,
)
from schemas.taxonomy import Profile
from schemas.urgency import URGENT_PRIORITIES
from services.common.db import listening
from services.common.faults import Backoff, describe, is_transient
from services.common.groupcommit import GroupCommit
from services.common.observability import current_traceparent, span_from
from services.common.outbox import enqueue, event_message
from services.common.pii import SealError, open_sealed
from services.common.runtime import Runtime, pause
from services.common.supervision import Loop
from services.notify.mail import compose_email, send_email
from services.notify.registry import Channel, disable_channel, kind_code
from services.notify.retry import DeliveryResult
from services.notify.store import (
    URGENT_WAKE_CHANNEL,
    WAKE_CHANNEL,
    DeliveryStatus,
    Notify,
    notification,
)
from services.notify.targets import WebhookClient, webhook_client
from services.notify.webhooks import send_webhook

log = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "veilig_notify_attempts_total",
    "Delivery attempts by channel, recipient kind and outcome",
    ["channel", "recipient", "outcome"],
)

QUARANTINED = Counter(
    "veilig_notify_quarantined_total",
    "Deliveries and escalation timers set aside after a deterministic error",
    ["item"],
)

# An earlier delivery to the same recipient still open holds a later one back. That test is
# written as "not settled" on purpose: "status IN ('pending', 'in_flight')" also matches the
# partial indexes of due deliveries, and when a burst had added thousands of pending rows
# since the last ANALYZE, the planner expected one row there and checked every candidate
# against every pending row (8,000 pending: 13 s a claim, O(n²)). Only deliveries_recipient
# serves this form: a lookup per candidate, 52 ms for the same 8,000 (decision 0006).
CLAIM = """
WITH due AS (
    SELECT d.message_id FROM deliveries d
    WHERE ((d.status = 'pending' AND d.next_attempt_at <= now())
           OR (d.status = 'in_flight' AND d.lease_until < now()))
      AND NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.incident_id = d.incident_id AND e.recipient = d.recipient
            AND e.seq < d.seq AND e.status NOT IN ('delivered', 'failed', 'quarantined'))
      AND (d.priority = ANY($3::text[])) = $4
    ORDER BY d.priority, d.next_attempt_at
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d
SET status = 'in_flight', attempts = d.attempts + 1,
    lease_until = now() + make_interval(secs => $2), leased_by = $5
FROM due WHERE d.message_id = due.message_id
RETURNING d.*
"""


async def claim_due(
    pool: asyncpg.Pool, notify: Notify, limit: int, *, urgent: bool, worker: uuid.UUID
) -> list[asyncpg.Record]:
    """Claim up to ``limit`` due deliveries of the urgent lane (P1/P2) or of the rest, most
    urgent first."""
    if limit <= 0:
        return []
    # One statement is a transaction of its own: no BEGIN and COMMIT, two round trips less
    # a claim (each waits its turn for a core under load, and a P1's delivery waits for them).
    return list(
        await pool.fetch(
            CLAIM, limit, notify.config.lease_seconds, list(URGENT_PRIORITIES), urgent, worker
        )
    )


def _route(row: asyncpg.Record, channel: Channel | None) -> NotificationChannel | None:
    """Where this attempt goes. A JSON body goes by webhook or e-mail, whichever is usable now
    (preferring the one it was queued for): a webhook disabled after a 410 falls back to
    e-mail. A CAP body needs the webhook."""
    queued: NotificationChannel = row["channel"]
    other: NotificationChannel = "email" if queued == "webhook" else "webhook"
    candidates = [queued] if queued == "cap" else [queued, other]
    return next((c for c in candidates if channel is not None and channel.usable(c)), None)


async def attempt(
    pool: asyncpg.Pool, client: WebhookClient, notify: Notify, row: asyncpg.Record
) -> tuple[NotificationChannel, Channel | None, DeliveryResult, bool]:
    """Make one attempt: (channel used, its configuration, result, whether anything was sent)."""
    config = notify.config
    channel = await notify.channels.get(pool, row["recipient"])
    route = _route(row, channel)
    if route is None or channel is None:
        log.error(
            "no usable channel for a recipient",
            extra={
                "alert": "ops",
                "recipient": row["recipient"],
                "message_id": str(row["message_id"]),
            },
        )
        error = f"no usable channel configured for {row['recipient']} (veilig recipients set)"
        return row["channel"], channel, DeliveryResult("retry", error=error), False
    try:
        body = open_sealed(row["body_sealed"]).encode()
    except SealError:
        # The key that sealed it was dropped (retention): the content is gone by design.
        return route, channel, DeliveryResult("failed", error="message content purged"), False
    if route == "email":
        assert channel.email is not None
        message = compose_email(
            json.loads(body),
            to=channel.email,
            sender=config.mail_from,
            subject_prefix=config.mail_subject_prefix,
            first_message_id=None if row["kind"] == "alert" else row["first_message_id"],
        )
        password = config.smtp_password.get_secret_value() if config.smtp_password else None
        result = await send_email(
            message,
            config.smtp_host,
            config.smtp_port,
            timeout=config.smtp_timeout_seconds,
            starttls=config.smtp_starttls,
            username=config.smtp_username,
            password=password,
        )
        return route, channel, result, True
    assert channel.webhook_url is not None
    result = await send_webhook(
        client,
        channel.webhook_url,
        body,
        message_id=str(row["message_id"]),
        secrets=channel.secrets,
        content_type=row["content_type"],
        profile=Profile(row["profile"]),
        traceparent=current_traceparent(),
        timeout=config.http_timeout_seconds,
    )
    return route, channel, result, True


@dataclass(frozen=True, slots=True)
class Attempted:
    """One attempt's outcome, to be recorded (with others: group commit)."""

    row: asyncpg.Record
    route: NotificationChannel
    channel: Channel | None
    result: DeliveryResult
    sent: bool
    traceparent: str | None


def recorder(
    pool: asyncpg.Pool, notify: Notify, jitter: random.Random
) -> GroupCommit[Attempted, None]:
    """Outcomes of concurrent sends are recorded together: one transaction and a handful of
    set-based statements for the whole group. Should the group fail on something other than
    the infrastructure (a bug, a row the database refuses), it is recorded again one outcome
    per savepoint, so that one bad outcome does not undo the others; the database going away
    fails them all, to be tried again."""

    async def apply(conn: asyncpg.Connection, group: Sequence[Attempted]) -> list[Exception | None]:
        now = datetime.now(UTC)
        outcomes = [plan(notify, attempted, jitter, now) for attempted in group]
        try:
            async with conn.transaction():
                await record(conn, notify, outcomes)
            return [None] * len(outcomes)
        except Exception as exc:
            if is_transient(exc) or len(outcomes) == 1:
                raise
        results: list[Exception | None] = []
        for outcome in outcomes:
            try:
                async with conn.transaction():
                    await record(conn, notify, [outcome])
                results.append(None)
            except Exception as exc:
                if is_transient(exc):
                    raise
                results.append(exc)
        return results

    return GroupCommit(pool, apply, service="notify", what="delivery outcomes")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt's outcome changes: the delivery's new state and the events it emits."""

    attempted: Attempted
    status: DeliveryStatus
    next_at: datetime | None
    events: list[NotificationEvent]


def plan(notify: Notify, attempted: Attempted, jitter: random.Random, now: datetime) -> Outcome:
    """The consequences of one attempt (pure: the schedule, the state, the events)."""
    row, route, channel, result, sent = (
        attempted.row,
        attempted.route,
        attempted.channel,
        attempted.result,
        attempted.sent,
    )
    number = row["attempts"]
    next_at = notify.config.retry_policy.schedule(result, number, now, jitter)
    if result.outcome == "gone" and _falls_back(row, channel, route):
        # The webhook is gone but the recipient has e-mail: this very message goes by e-mail
        # now (the next attempt routes there), not only the messages after it.
        next_at = now
    delivered = result.outcome == "delivered"
    status: DeliveryStatus = "delivered" if delivered else ("pending" if next_at else "failed")
    common = {
        "incident_id": row["incident_id"],
        "message_id": row["message_id"],
        "recipient": row["recipient"],
        "now": now,
    }
    events: list[NotificationEvent] = []
    if sent:
        events.append(
            notification(
                NotificationDispatched,
                channel=route,
                profile=row["profile"],
                priority=row["priority"],
                attempt=number,
                webhook_id=str(row["message_id"]) if route != "email" else None,
                cap_identifier=row["cap_identifier"] if route == "cap" else None,
                cap_msg_type=row["cap_msg_type"] if route == "cap" else None,
                acknowledge_by=row["acknowledge_by"],
                **common,
            )
        )
    if delivered:
        events.append(
            notification(
                NotificationDelivered,
                channel=route,
                attempt=number,
                status_code=result.status_code,
                **common,
            )
        )
    else:
        events.append(
            notification(
                NotificationFailed,
                channel=route,
                attempt=number,
                error=(result.error or result.outcome)[:2000],
                status_code=result.status_code,
                final=next_at is None,
                next_attempt_at=next_at,
                **common,
            )
        )
    return Outcome(attempted, status, next_at, events)


# Each outcome's new state, only while the lease is still the recorder's (same attempt number):
# a worker that lost its lease cannot overwrite a newer attempt.
_SAVE = """
UPDATE deliveries d
SET status = o.status, channel = o.channel,
    next_attempt_at = coalesce(o.next_at, d.next_attempt_at), lease_until = NULL,
    last_error = o.error, last_status_code = o.status_code,
    delivered_at = CASE WHEN o.status = 'delivered' THEN now() END,
    failed_at = CASE WHEN o.status = 'failed' THEN now() END
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
            $7::int[]) AS o(message_id, attempt, status, channel, next_at, error, status_code)
WHERE d.message_id = o.message_id AND d.status = 'in_flight' AND d.attempts = o.attempt
RETURNING d.message_id
"""

_ATTEMPTS = """
INSERT INTO delivery_attempts (message_id, attempt, outcome, status_code, error)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[])
"""


async def record(conn: asyncpg.Connection, notify: Notify, outcomes: Sequence[Outcome]) -> None:
    """Record attempts' outcomes (inside the caller's transaction), set-based."""
    saved = await conn.fetch(
        _SAVE,
        [o.attempted.row["message_id"] for o in outcomes],
        [o.attempted.row["attempts"] for o in outcomes],
        [o.status for o in outcomes],
        [o.attempted.route for o in outcomes],
        [o.next_at for o in outcomes],
        [o.attempted.result.error for o in outcomes],
        [o.attempted.result.status_code for o in outcomes],
    )
    ours = {r["message_id"] for r in saved}
    kept = [o for o in outcomes if o.attempted.row["message_id"] in ours]
    for lost in (o for o in outcomes if o.attempted.row["message_id"] not in ours):
        log.warning(
            "delivery lease lost before the outcome was recorded; another worker retries it",
            extra={
                "message_id": str(lost.attempted.row["message_id"]),
                "attempt": lost.attempted.row["attempts"],
            },
        )
    if not kept:
        return
    await conn.execute(
        _ATTEMPTS,
        [o.attempted.row["message_id"] for o in kept],
        [o.attempted.row["attempts"] for o in kept],
        [o.attempted.result.outcome for o in kept],
        [o.attempted.result.status_code for o in kept],
        [o.attempted.result.error for o in kept],
    )
    for outcome in kept:
        await _consequences(conn, outcome)
    await enqueue(
        conn,
        [
            event_message(notify.settings, event, traceparent=o.attempted.traceparent)
            for o in kept
            for event in o.events
        ],
    )
    for o in kept:
        # The recipient kind (politie.wijkagent.{wijk}), not the code: bounded label values.
        ATTEMPTS.labels(
            o.attempted.route, kind_code(o.attempted.row["recipient"]), o.attempted.result.outcome
        ).inc()


async def _consequences(conn: asyncpg.Connection, outcome: Outcome) -> None:
    """What an endpoint that is gone, or a delivery failed for good, sets off (rare: one
    statement each)."""
    row, result, channel = (
        outcome.attempted.row,
        outcome.attempted.result,
        outcome.attempted.channel,
    )
    if result.outcome == "gone" and channel is not None:
        await disable_channel(conn, channel.code, outcome.attempted.route)
        log.error(
            "endpoint is gone: channel disabled until an operator sets it again",
            extra={
                "alert": "ops",
                "recipient": row["recipient"],
                "channel": outcome.attempted.route,
            },
        )
    if outcome.status == "failed":
        log.error(
            "delivery failed for good",
            extra={
                "alert": "ops",
                "recipient": row["recipient"],
                "message_id": str(row["message_id"]),
                "attempts": row["attempts"],
                "error": result.error,
            },
        )
        # Nobody can acknowledge what never arrived: the timer escalates now.
        await conn.execute(
            "UPDATE escalations SET escalate_at = now(), reason = 'delivery_failed' "
            "WHERE incident_id = $1 AND recipient = $2 AND stopped_at IS NULL",
            row["incident_id"],
            row["escalation_root"] or row["recipient"],
        )


def _falls_back(row: asyncpg.Record, channel: Channel | None, route: NotificationChannel) -> bool:
    """Whether a message whose webhook answered 410 can still reach its recipient by e-mail
    (a CAP body needs the webhook; an e-mail that is gone has nowhere else to go)."""
    return (
        channel is not None
        and route != "email"
        and row["channel"] != "cap"
        and channel.usable("email")
    )


Record = Callable[[Attempted], Awaitable[None]]


async def deliver(
    pool: asyncpg.Pool,
    client: WebhookClient,
    notify: Notify,
    row: asyncpg.Record,
    record_outcome: Record,
) -> None:
    # One span per attempt, on the trace of the decision that caused it: the webhook's
    # traceparent header and the notification events continue it.
    with span_from(
        row["traceparent"],
        "notify.deliver",
        kind=SpanKind.PRODUCER,
        attributes={"incident.id": str(row["incident_id"]), "recipient": row["recipient"]},
    ):
        await _deliver(pool, client, notify, row, record_outcome)


async def _deliver(
    pool: asyncpg.Pool,
    client: WebhookClient,
    notify: Notify,
    row: asyncpg.Record,
    record_outcome: Record,
) -> None:
    message_id = str(row["message_id"])
    try:
        # Timeouts are per phase (connect, each SMTP command); the whole attempt must end
        # while the lease is ours, or another worker would send it a second time meanwhile.
        async with asyncio.timeout(notify.config.lease_seconds * 0.9):
            route, channel, result, sent = await attempt(pool, client, notify, row)
    except TimeoutError:
        route, channel, sent = row["channel"], None, True
        result = DeliveryResult("retry", error="timeout: the attempt outlasted its lease")
    except Exception as exc:
        if is_transient(exc):
            # The database went away while looking up the channel: nothing was sent. The
            # delivery is handed back as soon as the database answers again.
            log.warning(
                "delivery attempt interrupted by the infrastructure; handing it back",
                extra={"message_id": message_id, "error": describe(exc)},
            )
            await _persist(notify, message_id, lambda: hand_back(pool, row))
            return
        # A bug or corrupt data: it would fail the same way on every attempt. Quarantined,
        # visible to ops, while the rest proceed.
        await quarantine(pool, row, exc)
        return
    # The outcome is known: record it even if the database blinks meanwhile.
    attempted = Attempted(row, route, channel, result, sent, current_traceparent())
    try:
        await _persist(notify, message_id, lambda: record_outcome(attempted))
    except Exception as exc:
        await quarantine(pool, row, exc)
    else:
        if result.outcome == "gone":
            # This process disabled the channel, and the message's next attempt is due at
            # once: its cache must not wait for the trigger's signal to forget the channel.
            notify.channels.invalidate()


async def _persist(notify: Notify, message_id: str, write: Callable[[], Awaitable[None]]) -> None:
    """Write an attempt's consequence, waiting out a database blink for as long as the lease
    lasts (after that another worker may try again, which the attempt-number guard tells
    apart). A non-transient error is raised."""
    backoff = Backoff(first=0.2, cap=5.0)
    deadline = asyncio.get_running_loop().time() + notify.config.lease_seconds
    while True:
        try:
            await write()
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            if asyncio.get_running_loop().time() >= deadline:
                log.warning(
                    "could not write a delivery attempt's outcome; its lease runs out and it "
                    "is retried",
                    extra={"message_id": message_id, "error": describe(exc)},
                )
                return
            await asyncio.sleep(backoff.next())


# A lease whose attempt sent nothing goes back to ``pending``, due at once, its attempt
# uncounted; only while it is still the holder's (same attempt number).
_HAND_BACK_WHERE = """
UPDATE deliveries SET status = 'pending', attempts = attempts - 1, lease_until = NULL,
    leased_by = NULL
WHERE status = 'in_flight' AND """
HAND_BACK = _HAND_BACK_WHERE + "message_id = $1 AND attempts = $2"
# At the start of a worker's term: the leases it holds but is not sending.
HAND_BACK_ORPHANS = _HAND_BACK_WHERE + "leased_by = $1 AND NOT (message_id = ANY($2::uuid[]))"


async def hand_back(pool: asyncpg.Pool, row: asyncpg.Record) -> None:
    await pool.execute(HAND_BACK, row["message_id"], row["attempts"])


async def quarantine(pool: asyncpg.Pool, row: asyncpg.Record, exc: BaseException) -> None:
    """Set a delivery aside with its error: ops see it (``/deliveries?status=quarantined``),
    later messages to the recipient are not held behind it."""
    error = f"quarantined: {describe(exc)}"
    log.error(
        "delivery quarantined",
        exc_info=exc,
        extra={"alert": "ops", "message_id": str(row["message_id"]), "error": error},
    )
    QUARANTINED.labels("delivery").inc()
    try:
        await pool.execute(
            "UPDATE deliveries SET status = 'quarantined', quarantined_at = now(), "
            "lease_until = NULL, last_error = $3 "
            "WHERE message_id = $1 AND status = 'in_flight' AND attempts = $2",
            row["message_id"],
            row["attempts"],
            error[:2000],
        )
    except Exception as again:
        # Not even that: the lease runs out and the next attempt meets the same fate.
        log.error("could not quarantine a delivery", extra={"error": describe(again)})


class DeliveryWorker:
    """Sends due deliveries. Its in-flight sends outlive a restart of its loop (a database
    blink ends a term, not the sends that were under way); they are awaited on shutdown."""

    def __init__(self, notify: Notify, *, urgent_only: bool = False) -> None:
        self.notify = notify
        self.urgent_only = urgent_only  # the urgent lane's worker: P1/P2 only
        self.wake_channel = URGENT_WAKE_CHANNEL if urgent_only else WAKE_CHANNEL
        self.jitter = random.Random()
        self._recorder: GroupCommit[Attempted, None] | None = None
        self.running: dict[asyncio.Task[None], uuid.UUID] = {}  # each send: its message id
        self.running_rest: set[asyncio.Task[None]] = set()  # the P3/P4 part of running
        self.wake = asyncio.Event()
        self._client: WebhookClient | None = None
        self.id = uuid.uuid4()  # the lease holder: this worker, for this process's life

    def _woken(self, *_: object) -> None:
        self.wake.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.pop(task, None)
        self.running_rest.discard(task)
        self.wake.set()  # a free slot: claim more

    async def claim(self, pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], int]:
        """Due deliveries for the free slots, P1/P2 first; P3/P4 never take the slots kept
        for P1/P2 (``urgent_reserved``). Returns the rows and how many slots were offered."""
        config = self.notify.config
        free = config.worker_concurrency - len(self.running)
        urgent = await claim_due(pool, self.notify, free, urgent=True, worker=self.id)
        if self.urgent_only:
            return urgent, free
        room = min(
            free - len(urgent),
            config.worker_concurrency - config.urgent_reserved - len(self.running_rest),
        )
        rest = await claim_due(pool, self.notify, room, urgent=False, worker=self.id)
        return urgent + rest, free

    def start(self, pool: asyncpg.Pool, row: asyncpg.Record) -> None:
        assert self._client is not None
        if self._recorder is None:
            self._recorder = recorder(pool, self.notify, self.jitter)
        task = asyncio.create_task(
            deliver(pool, self._client, self.notify, row, self._recorder.submit)
        )
        self.running[task] = row["message_id"]
        if row["priority"] not in URGENT_PRIORITIES:
            self.running_rest.add(task)
        task.add_done_callback(self._done)

    async def run(self, rt: Runtime, loop: Loop) -> None:
        """One term of the loop: until the service stops, or the database fails under it."""
        config = self.notify.config
        if self._client is None:
            self._client = webhook_client(self.notify.settings, self.notify.config)
        # A database blink may have ended the last term between a claim's commit and its
        # reply: what this worker holds but does not send is due again now, not in a lease.
        handed_back = await rt.pool.execute(HAND_BACK_ORPHANS, self.id, list(self.running.values()))
        if handed_back != "UPDATE 0":
            log.warning("handed back leases no attempt holds", extra={"result": handed_back})
        async with listening(rt.pool, self.wake_channel, self._woken):
            while not rt.stopping.is_set():
                loop.beat()
                self.wake.clear()  # before claiming: a NOTIFY during the claim wakes the next
                rows, offered = await self.claim(rt.pool)
                for row in rows:
                    self.start(rt.pool, row)
                if rows and len(rows) == offered:
                    continue  # maybe more are due
                await pause(rt.stopping, self.wake, config.poll_seconds)
        await self.close()

    async def close(self) -> None:
        """On shutdown: finish the sends under way. Cancelled after the shutdown grace, the
        leases of unfinished sends run out and another worker (or the next start) retries."""
        try:
            if self.running:
                await asyncio.wait(list(self.running))
        finally:
            for task in list(self.running):
                task.cancel()
            if self._client is not None:
                await self._client.aclose()
                self._client = None


async def oldest_due_delivery(rt: Runtime, *, urgent_only: bool = False) -> float:
    """Seconds the oldest due delivery (of P1/P2 only, with ``urgent_only``) has waited to be
    claimed (0 when none is due)."""
    age = await rt.pool.fetchval(
        "SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM deliveries "
        "WHERE status = 'pending' AND next_attempt_at <= now() "
        "AND (NOT $1 OR priority = ANY($2::text[]))",
        urgent_only,
        list(URGENT_PRIORITIES),
    )
    return max(float(age or 0.0), 0.0)
