"""Intake's bulk work waits at its turns while a report that may be urgent is being accepted
(services/intake/intake.py: UrgentFirst, SingleReports); an in-memory group commit stands in
for PostgreSQL here, the lanes' end-to-end test runs the real one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

from schemas.submission import IncidentSubmission
from services.intake.intake import Outcome, Single, SingleReports, UrgentFirst
from services.intake.partners import Partner

PARTNER = Partner("wijkapp", "Wijkapp", "citizen", ("incidents:write",), 600)


def single(external_id: str, **fields: Any) -> Single:
    report = IncidentSubmission.model_validate(
        {
            "external_id": external_id,
            "description": "Melding voor de test van de volgorde in intake",
            "location": {"buurt_code": "BU03920000"},
            **fields,
        }
    )
    return Single(PARTNER, report, "http", None)


async def waits(turn: asyncio.Task[None]) -> bool:
    """Whether ``turn`` is still waiting after the event loop has run everything ready."""
    for _ in range(5):
        await asyncio.sleep(0)
    return not turn.done()


async def test_bulk_takes_its_turn_at_once_when_nothing_is_urgent() -> None:
    gate = UrgentFirst()
    assert not await waits(asyncio.create_task(gate.turn()))


async def test_bulk_waits_until_the_last_urgent_report_is_accepted() -> None:
    gate = UrgentFirst(max_wait=60)
    with gate.urgent():
        with gate.urgent():
            turn = asyncio.create_task(gate.turn())
            assert await waits(turn)
        assert await waits(turn), "one urgent report is still being accepted"
    assert not await waits(turn)


async def test_a_stream_of_urgent_reports_slows_the_bulk_but_cannot_stop_it() -> None:
    gate = UrgentFirst(max_wait=0.05)
    with gate.urgent():
        await asyncio.wait_for(gate.turn(), timeout=10)  # gave up waiting: the bulk goes on


class Commit:
    """An in-memory group commit: notes whether bulk work had to wait meanwhile."""

    def __init__(self, gate: UrgentFirst) -> None:
        self.gate = gate
        self.bulk_waited: dict[str, bool] = {}

    async def submit(self, item: Single) -> Outcome:
        turn = asyncio.create_task(self.gate.turn())
        self.bulk_waited[item.report.external_id] = await waits(turn)
        turn.cancel()
        return Outcome(item.report.external_id, "accepted", uuid.uuid4())


async def test_only_a_report_that_may_be_urgent_goes_before_the_bulk() -> None:
    gate = UrgentFirst(max_wait=60)
    commit = Commit(gate)
    singles = SingleReports(cast(Any, commit), gate)
    await singles.submit(single("fire", flags={"in_progress": True}))
    await singles.submit(single("fire-hint", category_hint="brand"))
    await singles.submit(single("graffiti", category_hint="vandalisme"))
    assert commit.bulk_waited == {"fire": True, "fire-hint": True, "graffiti": False}
    assert not await waits(asyncio.create_task(gate.turn()))
