"""The event models: names, types, topics, and the rules every event keeps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from schemas.events import (
    REGISTRY,
    Event,
    IncidentEvent,
    IncidentMerged,
    IncidentReclassified,
    IncidentReported,
    IncidentTriaged,
    Location,
    NotificationEvent,
    SafetyPlanEvent,
    register,
)
from schemas.examples import EXAMPLES
from schemas.topics import INCIDENT_EVENTS, NOTIFICATION_EVENTS, SAFETY_PLANS, Topic

FACTS = {
    "incident": [
        "reported",
        "triaged",
        "merged",
        "reclassified",
        "priority-changed",
        "status-changed",
        "acknowledged",
        "resolved",
        "withdrawal-requested",
        "zorgsignaal-raised",
        "assigned",
        "deadline-missed",
        "personal-data-erased",
    ],
    "notification": [
        "dispatched",
        "delivered",
        "failed",
        "escalated",
        "acknowledged",
        "escalation-scheduled",
    ],
    "safety-plan": ["adopted", "ended"],
}
FAMILIES: dict[type[Event], tuple[str, Topic]] = {
    IncidentEvent: ("Incident", INCIDENT_EVENTS),
    NotificationEvent: ("Notification", NOTIFICATION_EVENTS),
    SafetyPlanEvent: ("SafetyPlan", SAFETY_PLANS),
}


def _reported(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES[IncidentReported].model_dump(), **changes}


def test_the_registry_holds_every_fact_as_v1_and_the_sealed_report_as_v2() -> None:
    expected = {
        f"nl.haarlem.veilig.{family}.{fact}.v1" for family, facts in FACTS.items() for fact in facts
    }
    assert set(REGISTRY) == expected | {"nl.haarlem.veilig.incident.reported.v2"}
    for ce_type, cls in REGISTRY.items():
        assert cls.ce_type == ce_type
        assert cls.model_fields["schema_version"].default == int(ce_type.rsplit(".v", 1)[1])


@pytest.mark.parametrize("cls", REGISTRY.values(), ids=lambda c: c.__name__)
def test_names_topics_and_immutability(cls: type[Event]) -> None:
    ((prefix, topic),) = [found for base, found in FAMILIES.items() if issubclass(cls, base)]
    assert cls.topic is topic
    assert re.fullmatch(rf"{prefix}[A-Z][a-z]+(?:[A-Z][a-z]+)*ed", cls.__name__)
    event = EXAMPLES[cls]
    with pytest.raises(ValidationError, match="frozen"):
        event.event_id = uuid4()  # type: ignore[misc]


@pytest.mark.parametrize("cls", REGISTRY.values(), ids=lambda c: c.__name__)
def test_every_model_and_field_is_documented_in_the_schema(cls: type[Event]) -> None:
    schema = cls.model_json_schema()
    models = [d for d in [schema, *schema.get("$defs", {}).values()] if "properties" in d]
    for model in models:
        assert model.get("description"), model["title"]
        for name, prop in model["properties"].items():
            assert prop.get("description"), f"{model['title']}.{name} has no description"


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError, match="occurred_at"):
        IncidentReported.model_validate(_reported(occurred_at=datetime(2025, 1, 1, 12, 0)))


def test_datetimes_are_kept_in_utc_and_serialised_with_z() -> None:
    cet = timezone(timedelta(hours=1))
    event = IncidentReported.model_validate(
        _reported(occurred_at=datetime(2025, 1, 1, 13, 30, tzinfo=cet))
    )
    assert event.occurred_at == datetime(2025, 1, 1, 12, 30, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    assert '"occurred_at":"2025-01-01T12:30:00Z"' in event.model_dump_json()


def test_category_codes_come_from_the_taxonomy() -> None:
    with pytest.raises(ValidationError, match="unknown category 'inbraak'"):
        IncidentReported.model_validate(_reported(category_hint="inbraak"))
    schema = IncidentTriaged.model_json_schema()
    assert "hic.woninginbraak" in schema["properties"]["category"]["enum"]


def test_recipient_codes_come_from_the_taxonomy() -> None:
    triaged = EXAMPLES[IncidentTriaged].model_dump()
    triaged["recipients"] = [{"code": "buurtpreventie.BU03920102", "profile": "coarse"}]
    assert IncidentTriaged.model_validate(triaged).recipients[0].code.endswith("BU03920102")
    triaged["recipients"] = [{"code": "politie.wijkagent.WK036301", "profile": "full"}]
    with pytest.raises(ValidationError, match="unknown recipient"):
        IncidentTriaged.model_validate(triaged)


def test_description_is_at_most_4000_characters() -> None:
    IncidentReported.model_validate(_reported(description="x" * 4000))
    with pytest.raises(ValidationError, match="description"):
        IncidentReported.model_validate(_reported(description="x" * 4001))


def test_the_producer_must_publish_on_the_topic() -> None:
    with pytest.raises(ValidationError, match="'notify' does not publish on incident-events"):
        IncidentReported.model_validate(_reported(producer="notify"))


def test_published_schemas_stay_open_to_added_fields() -> None:
    for cls in REGISTRY.values():
        assert "additionalProperties" not in cls.model_json_schema(), cls
        assert "additionalProperties" not in Location.model_json_schema()


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ({"lat": 52.38, "resolution": "point"}, "lat and lon"),
        ({"resolution": "point"}, "needs lat and lon"),
        ({"resolution": "buurt"}, "needs buurt_code"),
        (
            {"buurt_code": "BU03920102", "wijk_code": "WK039202", "resolution": "buurt"},
            "not the wijk of BU03920102",
        ),
        ({"lat": 91.0, "lon": 4.6, "resolution": "point"}, "less than or equal to 90"),
    ],
)
def test_location_is_consistent(location: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Location.model_validate(location)


def test_a_fact_about_a_change_must_change_something() -> None:
    data = EXAMPLES[IncidentReclassified].model_dump()
    with pytest.raises(ValidationError, match="old and new are the same"):
        IncidentReclassified.model_validate({**data, "new_category": data["old_category"]})
    merged = EXAMPLES[IncidentMerged].model_dump()
    with pytest.raises(ValidationError, match="merged into itself"):
        IncidentMerged.model_validate({**merged, "duplicate_incident_id": merged["incident_id"]})


def test_register_checks_type_name_topic_and_version() -> None:
    class Misnamed(IncidentEvent):
        ce_type = "nl.haarlem.veilig.incident.Misnamed"
        schema_version: int = 1

    class WrongTopic(NotificationEvent):
        ce_type = "nl.haarlem.veilig.incident.wrong-topic.v1"
        schema_version: int = 1

    class WrongVersion(IncidentEvent):
        ce_type = "nl.haarlem.veilig.incident.wrong-version.v2"
        schema_version: int = 1

    class Twice(IncidentEvent):
        ce_type = IncidentReported.ce_type
        schema_version: int = 1

    for cls, message in [
        (Misnamed, "does not match"),
        (WrongTopic, "belong on incident-events"),
        (WrongVersion, "must be 2"),
        (Twice, "already registered"),
    ]:
        with pytest.raises(TypeError, match=message):
            register(cls)
    assert REGISTRY[IncidentReported.ce_type] is IncidentReported
