"""Data minimisation: what each disclosure profile gets (DOMAIN.md "Disclosure profiles")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.disclosure import minimise, strip_personal
from schemas.events import REGISTRY, Event, IncidentReported, IncidentTriaged, Reporter
from schemas.examples import EXAMPLES
from schemas.taxonomy import Profile
from schemas.timeutil import floor_quarter_hour

REPORTED = EXAMPLES[IncidentReported]
# As notify holds it for a full recipient after opening the sealed contact details.
OPENED = REPORTED.model_copy(
    update={"reporter": Reporter(name="J. Jansen", phone="+31 6 00000000")}
)


def _marked(schema: dict[str, Any], key: str, accept: set[Any]) -> set[str]:
    """Names of properties (in any model of the schema) whose mark ``key`` is in ``accept``."""
    models = [schema, *schema.get("$defs", {}).values()]
    return {
        name
        for model in models
        for name, prop in model.get("properties", {}).items()
        if prop.get(key) in accept
    }


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_coarse_has_no_free_text_exact_location_or_reporter() -> None:
    coarse = minimise(REPORTED, Profile.COARSE)
    assert "description" not in coarse
    assert "attributes" not in coarse
    assert "reporter_sealed" not in coarse
    assert set(coarse["location"]) == {"buurt_code", "wijk_code", "resolution", "inside_haarlem"}
    assert "victim_role" not in coarse["flags"]
    assert coarse["category_hint"] == "hic.woninginbraak"
    assert coarse["location"]["buurt_code"] == "BU03920102"


def test_coarse_times_are_rounded_down_to_the_quarter_hour() -> None:
    coarse = minimise(REPORTED, "coarse")
    assert REPORTED.occurred_at == datetime(2025, 3, 28, 22, 38, 5, tzinfo=UTC)
    assert coarse["occurred_at"] == "2025-03-28T22:30:00Z"
    assert coarse["recorded_at"] == "2025-03-28T22:30:00Z"
    triaged = minimise(EXAMPLES[IncidentTriaged], "coarse")
    assert triaged["acknowledge_by"] == "2025-03-28T22:30:00Z"
    assert "recipients" not in triaged
    assert "reasons" not in triaged


def test_operational_has_everything_but_the_reporter() -> None:
    operational = minimise(OPENED, Profile.OPERATIONAL)
    assert "reporter" not in operational
    assert "reporter_sealed" not in operational
    assert operational["description"] == REPORTED.description
    assert operational["location"]["lat"] == 52.3812
    assert operational["location"]["address"] == "Grote Markt 2, Haarlem"
    assert operational["occurred_at"] == "2025-03-28T22:38:05Z"
    assert operational == {
        k: v for k, v in OPENED.model_dump(mode="json").items() if "reporter" not in k
    }


def test_full_has_everything() -> None:
    assert minimise(REPORTED, Profile.FULL) == REPORTED.model_dump(mode="json")
    full = minimise(OPENED, Profile.FULL)
    assert full["reporter"] == {"name": "J. Jansen", "phone": "+31 6 00000000", "email": None}


def test_strip_personal_removes_the_reporter_only() -> None:
    stripped = strip_personal(OPENED)
    assert stripped["description"] == REPORTED.description  # minimised per profile, not here
    assert stripped == {
        k: v for k, v in OPENED.model_dump(mode="json").items() if "reporter" not in k
    }


@pytest.mark.parametrize("event", [*EXAMPLES.values(), OPENED], ids=lambda e: type(e).__name__)
def test_marks_in_the_schema_are_applied_to_every_event(event: Event) -> None:
    schema = type(event).model_json_schema()
    above_coarse = _marked(schema, "x-disclosure", {"operational", "full"})
    full_only = _marked(schema, "x-disclosure", {"full"})
    personal = _marked(schema, "x-personal-data", {True})
    assert not _keys(minimise(event, "coarse")) & above_coarse
    assert not _keys(minimise(event, "operational")) & full_only
    assert not _keys(strip_personal(event)) & personal
    assert minimise(event, "full") == event.model_dump(mode="json")


def test_personal_data_is_never_below_operational() -> None:
    for cls in REGISTRY.values():
        schema = cls.model_json_schema()
        personal = _marked(schema, "x-personal-data", {True})
        assert personal <= _marked(schema, "x-disclosure", {"operational", "full"}), cls


def test_floor_quarter_hour() -> None:
    assert floor_quarter_hour(datetime(2025, 1, 1, 12, 44, 59, 999, tzinfo=UTC)) == datetime(
        2025, 1, 1, 12, 30, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        floor_quarter_hour(datetime(2025, 1, 1, 12, 44))
