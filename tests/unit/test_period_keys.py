"""The personal part of a report travels sealed with its period's key (docs/decisions/0010).

Pure parts here; the keys in PostgreSQL and the purge that destroys them are tested against the
real database and broker in tests/integration/test_privacy.py.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from schemas.envelope import decode, encode
from schemas.erasure import erase_report
from schemas.events import IncidentReported, IncidentReportedSealed
from schemas.examples import EXAMPLES
from services.common import pii
from services.common.period_keys import (
    CACHE_SECONDS,
    PeriodKey,
    PeriodKeys,
    ReportKey,
    open_report,
    seal_report,
)
from tests.unit.test_envelope import STRATEGIES

REPORT = EXAMPLES[IncidentReported]


def _key() -> PeriodKey:
    return PeriodKey(uuid.uuid4(), date(2025, 3, 28), Fernet.generate_key())


def _own(period_key: PeriodKey | None = None) -> ReportKey:
    return ReportKey(period_key or _key(), Fernet.generate_key())


def test_the_wire_carries_no_description_location_contact_or_attributes() -> None:
    value = encode(seal_report(REPORT, _own())).value.decode()
    for personal in (
        REPORT.description,
        "Grote Markt 2",
        "52.3812",
        "4.6366",
        "meldkamer",
        str(REPORT.reporter_sealed),
    ):
        assert personal not in value
    # What analytics counts stays readable.
    for clear in ("hic.woninginbraak", "BU03920102", "WK039201", "MK-2025-004711", "politie"):
        assert clear in value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=STRATEGIES[IncidentReported])
def test_a_sealed_report_opens_to_itself_through_the_wire(report: IncidentReported) -> None:
    own = _own()
    message = encode(seal_report(report, own))
    decoded = decode(message.headers, message.value)
    assert isinstance(decoded, IncidentReportedSealed)
    assert decoded.personal_sealed.key_id == own.period_key.key_id
    opened = open_report(decoded, {report.incident_id: own})
    assert type(opened) is IncidentReported
    assert opened == report


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(report=STRATEGIES[IncidentReported])
def test_without_its_key_a_report_reads_as_erased(report: IncidentReported) -> None:
    sealed = seal_report(report, _own())
    assert open_report(sealed, {}) == erase_report(report)  # erased, or its day's key destroyed


def test_a_report_that_does_not_open_with_its_key_is_an_error_not_an_erasure() -> None:
    sealed = seal_report(REPORT, _own())
    with pytest.raises(pii.SealError, match=str(REPORT.incident_id)):
        open_report(sealed, {REPORT.incident_id: _own()})


def test_an_unsealed_report_is_opened_as_it_is() -> None:
    assert open_report(REPORT, {}) is REPORT


@pytest.mark.parametrize(
    "change",
    [
        {"description": "Naam van de buurman"},
        {"reporter_sealed": "gAAAA"},
        {"attributes": {"persons_seen": 2}},
        {"flags": {"victim_role": "slachtoffer"}},
        {"location": {"lat": 52.38, "lon": 4.63, "resolution": "point"}},
        {"location": {"address": "Grote Markt 2", "resolution": "address_unresolved"}},
    ],
)
def test_a_sealed_report_with_personal_data_in_the_clear_is_refused(
    change: dict[str, Any],
) -> None:
    data = seal_report(REPORT, _own()).model_dump()
    for name, value in change.items():
        data[name] = {**data[name], **value} if isinstance(value, dict) and data[name] else value
    with pytest.raises(ValidationError, match="personal fields in the clear"):
        IncidentReportedSealed.model_validate(data)


class FakeConnection:
    """Answers the one query :meth:`PeriodKeys.load` asks, from a dict; counts the asks."""

    def __init__(self, rows: dict[uuid.UUID, str | None]) -> None:
        self.rows = rows
        self.asked = 0

    async def fetch(self, _query: str, key_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        self.asked += 1
        return [{"key_id": k, "key_sealed": self.rows[k]} for k in key_ids if k in self.rows]


async def test_live_keys_are_read_again_after_a_while_destroyed_ones_never() -> None:
    now = [0.0]
    keys = PeriodKeys(clock=lambda: now[0])
    live, gone = _key(), _key()
    conn = FakeConnection({live.key_id: pii.seal(live.key.decode()), gone.key_id: None})
    await keys.load(conn, [live.key_id, gone.key_id])  # type: ignore[arg-type]
    assert (keys.key(live.key_id), keys.key(gone.key_id)) == (live.key, None)
    await keys.load(conn, [live.key_id, gone.key_id])  # type: ignore[arg-type]
    assert conn.asked == 1
    # The purge destroyed the live key meanwhile: after the cache time it is gone here too.
    conn.rows[live.key_id] = None
    now[0] = CACHE_SECONDS + 1
    await keys.load(conn, [live.key_id, gone.key_id])  # type: ignore[arg-type]
    assert conn.asked == 2
    assert keys.key(live.key_id) is None
