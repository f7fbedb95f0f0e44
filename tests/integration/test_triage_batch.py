"""Triage's set-based shell against the real broker and database: reports that arrive
together (most likely one consumed batch) merge and raise as they do one at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from schemas.events import IncidentPriorityChanged, IncidentTriaged
from schemas.taxonomy import priority_rank
from tests.integration.test_triage import Stack, reported, stack  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


async def test_reports_sent_together_merge_and_raise_within_the_batch(stack: Stack) -> None:  # noqa: F811
    text = "Burenoverlast: de buren draaien elke nacht keiharde muziek en schreeuwen"
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    first = reported(text, at=t0, hint="woonoverlast")
    again = reported(text, at=t0 + timedelta(minutes=1), hint="woonoverlast")
    other = reported(text, at=t0 + timedelta(minutes=2), hint="woonoverlast", partner="wijkapp")
    await stack.send(first, again, other)

    ids = {first.incident_id, again.incident_id, other.incident_id}
    events = await stack.outputs(ids, want=5)
    # Keyed by incident id, the three may sit on different partitions: whichever triage
    # meets first opens the incident, the other two merge into it, and the second partner
    # raises it once.
    opener = events[0].incident_id
    assert all(e.incident_id == opener for e in events)
    assert sorted(type(e).__name__ for e in events) == [
        "IncidentMerged",
        "IncidentMerged",
        "IncidentPriorityChanged",
        "IncidentTriaged",
        "IncidentTriaged",
    ]
    decided = events[0]
    (raised,) = [e for e in events if isinstance(e, IncidentPriorityChanged)]
    assert isinstance(decided, IncidentTriaged)
    assert priority_rank(raised.new_priority) == priority_rank(decided.priority) - 1
    assert raised.reason in ("2 reports from 2 partners", "3 reports from 2 partners")

    conn = await asyncpg.connect(stack.settings.database_url.get_secret_value())
    try:
        row = await conn.fetchrow(
            "SELECT report_count, effective_priority, status FROM triage.incidents "
            "WHERE incident_id = $1",
            opener,
        )
        merged = await conn.fetch(
            "SELECT incident_id FROM triage.incidents WHERE merged_into = $1", opener
        )
        history = await conn.fetch(
            "SELECT kind FROM triage.history WHERE incident_id = $1 ORDER BY id", opener
        )
    finally:
        await conn.close()
    assert (row["report_count"], row["effective_priority"], row["status"]) == (
        3,
        raised.new_priority,
        "triaged",
    )
    assert {m["incident_id"] for m in merged} == ids - {opener}
    kinds = [h["kind"] for h in history]
    assert kinds[0] == "triaged"
    assert sorted(kinds[1:]) == ["priority raised", "report added", "report added"]
