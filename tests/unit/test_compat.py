"""The compatibility guard: published event schemas may only grow, else the version goes up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import BaseModel, Field

from schemas.compat import breaking_changes
from schemas.events import REGISTRY, IncidentEvent
from schemas.generate import JSONSCHEMA_DIR, event_schema, incompatible


class Place(BaseModel):
    buurt: str | None = None
    lat: float | None = None


class V1(BaseModel):
    count: int
    note: str | None = None
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []
    place: Place


class OptionalFieldAdded(V1):
    extra: str | None = None


class IntWidenedToNumber(V1):
    count: float  # type: ignore[assignment]


class EnumValueAdded(V1):
    kind: Literal["a", "b", "c"] = "a"


class NoteRemoved(BaseModel):
    count: int
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []
    place: Place


class RequiredFieldAdded(V1):
    source: str


class NoteNoLongerNullable(V1):
    note: str = ""  # type: ignore[assignment]


class EnumValueRemoved(V1):
    kind: Literal["a"] = "a"  # type: ignore[assignment]


class CountNarrowedToBool(V1):
    count: bool  # type: ignore[assignment]


class NoteGotMaxLength(V1):
    note: str | None = Field(default=None, max_length=10)


class NestedPlace(BaseModel):
    lat: float | None = None


class NestedFieldRemoved(V1):
    place: NestedPlace  # type: ignore[assignment]


class TagItemsNarrowed(V1):
    tags: list[Literal["x"]] = []  # type: ignore[assignment]


def _changes(new: type[BaseModel]) -> list[str]:
    return breaking_changes(V1.model_json_schema(), new.model_json_schema())


@pytest.mark.parametrize(
    "new", [V1, OptionalFieldAdded, IntWidenedToNumber, EnumValueAdded], ids=lambda c: c.__name__
)
def test_compatible_changes_pass(new: type[BaseModel]) -> None:
    assert _changes(new) == []


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        (NoteRemoved, "note: field removed (or renamed)"),
        (RequiredFieldAdded, "source: new required field"),
        (NoteNoLongerNullable, "note: no longer accepts null"),
        (EnumValueRemoved, "kind: values removed: ['b']"),
        (CountNarrowedToBool, "count: no longer accepts integer"),
        (NoteGotMaxLength, "note: maxLength 10 added"),
        (NestedFieldRemoved, "place.buurt: field removed (or renamed)"),
        (TagItemsNarrowed, "tags[]: now restricted to ['x']"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_breaking_changes_are_named(new: type[BaseModel], expected: str) -> None:
    assert expected in _changes(new)


def test_a_tighter_max_length_is_breaking_and_a_looser_one_is_not() -> None:
    class Short(BaseModel):
        note: str = Field(max_length=10)

    class Long(BaseModel):
        note: str = Field(max_length=20)

    short, long = Short.model_json_schema(), Long.model_json_schema()
    assert breaking_changes(short, long) == []
    assert breaking_changes(long, short) == ["note: maxLength tightened from 20 to 10"]


# --- the guard over the registry ------------------------------------------------------------


class ThingHappenedV1(IncidentEvent):
    """A synthetic event."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.thing-happened.v1"
    schema_version: Literal[1] = 1
    what: str


class ThingHappenedV1Broken(IncidentEvent):
    """The same type, with a field removed and a required one added."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.thing-happened.v1"
    schema_version: Literal[1] = 1
    how: str


class ThingHappenedV2(IncidentEvent):
    """The breaking change as a new version."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.thing-happened.v2"
    schema_version: Literal[2] = 2
    how: str


class ThingHappenedV1Grown(IncidentEvent):
    """The same type with an optional field added."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.thing-happened.v1"
    schema_version: Literal[1] = 1
    what: str
    detail: str | None = None


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    path = tmp_path / f"{ThingHappenedV1.ce_type}.json"
    path.write_text(json.dumps(event_schema(ThingHappenedV1)), encoding="utf-8")
    return tmp_path


def test_a_breaking_change_in_place_fails(committed: Path) -> None:
    found = incompatible({ThingHappenedV1.ce_type: ThingHappenedV1Broken}, committed)
    assert found == {
        ThingHappenedV1.ce_type: ["what: field removed (or renamed)", "how: new required field"]
    }


def test_the_same_change_as_a_new_version_passes(committed: Path) -> None:
    registry = {ThingHappenedV1.ce_type: ThingHappenedV1, ThingHappenedV2.ce_type: ThingHappenedV2}
    assert incompatible(registry, committed) == {}


def test_an_added_optional_field_passes(committed: Path) -> None:
    assert incompatible({ThingHappenedV1.ce_type: ThingHappenedV1Grown}, committed) == {}


def test_dropping_a_published_type_fails(committed: Path) -> None:
    found = incompatible({ThingHappenedV2.ce_type: ThingHappenedV2}, committed)
    assert list(found) == [ThingHappenedV1.ce_type]


def test_no_event_breaks_its_committed_schema() -> None:
    committed = {path.stem for path in JSONSCHEMA_DIR.glob("*.json")}
    assert set(REGISTRY) <= committed, "run python -m schemas.generate"
    assert incompatible() == {}, "bump the ce_type version instead of changing it in place"
