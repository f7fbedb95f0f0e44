"""The envelope: every event survives the wire, and a bad message says what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from schemas import geo
from schemas.envelope import (
    EncodedMessage,
    EnvelopeError,
    decode,
    decode_wanted,
    encode,
    event_type,
    validation_errors,
)
from schemas.erasure import erase_report
from schemas.events import (
    REGISTRY,
    CategoryProbability,
    EscalationStop,
    Event,
    Flags,
    IncidentAcknowledged,
    IncidentAssigned,
    IncidentDeadlineMissed,
    IncidentMerged,
    IncidentPersonalDataErased,
    IncidentPriorityChanged,
    IncidentReclassified,
    IncidentReported,
    IncidentReportedSealed,
    IncidentResolved,
    IncidentStatusChanged,
    IncidentTriaged,
    IncidentWithdrawalRequested,
    IncidentZorgsignaalRaised,
    Location,
    NotificationAcknowledged,
    NotificationDelivered,
    NotificationDispatched,
    NotificationEscalated,
    NotificationEscalationScheduled,
    NotificationFailed,
    Recipient,
    Reporter,
    SafetyPlanAdopted,
    SafetyPlanEnded,
    SafetyPlanEvent,
    SealedPersonal,
)
from schemas.examples import EXAMPLES
from schemas.taxonomy import PLACEHOLDERS, Profile, RecipientRule, taxonomy
from schemas.timeutil import AMSTERDAM

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ALL_EXAMPLES = [pytest.param(e, id=type(e).__name__) for e in EXAMPLES.values()]


def test_every_registered_event_has_an_example() -> None:
    assert set(EXAMPLES) == set(REGISTRY.values())


@pytest.mark.parametrize("event", ALL_EXAMPLES)
def test_every_event_type_round_trips(event: Event) -> None:
    message = encode(event)
    assert decode(message.headers, message.value) == event
    assert decode(message.text_headers(), message.value) == event  # FastStream's form


@pytest.mark.parametrize("event", ALL_EXAMPLES)
def test_headers_key_and_topic(event: Event) -> None:
    message = encode(event, traceparent=TRACEPARENT, tracestate="vh=1")
    headers = message.text_headers()
    assert message.topic == event.topic.name
    subject = event.wijk_code if isinstance(event, SafetyPlanEvent) else str(event.incident_id)
    assert message.key == subject.encode()
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == str(event.event_id)
    assert headers["ce_source"] == f"/veilig-haarlem/{event.producer}"
    assert headers["ce_type"] == event.ce_type
    assert headers["ce_subject"] == subject
    assert headers["content-type"] == "application/json"
    assert headers["traceparent"] == TRACEPARENT
    assert headers["tracestate"] == "vh=1"
    assert headers["ce_time"].endswith("Z")
    assert datetime.fromisoformat(headers["ce_time"]) == event.occurred_at
    assert all(isinstance(v, bytes) for _, v in message.headers)  # aiokafka's form


@pytest.mark.parametrize("event", ALL_EXAMPLES)
def test_the_official_cloudevents_sdk_reads_our_messages(event: Event) -> None:
    message = encode(event)
    parsed = from_binary(
        KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value),
        JSONFormat(),
    )
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == str(event.event_id)
    assert parsed.get_source() == f"/veilig-haarlem/{event.producer}"
    assert parsed.get_type() == event.ce_type
    assert parsed.get_subject() == event.subject
    assert parsed.get_time() == event.occurred_at
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == event.model_dump(mode="json")


def test_we_read_messages_the_cloudevents_sdk_wrote() -> None:
    event = EXAMPLES[IncidentTriaged]
    sdk_event = CloudEvent(
        attributes={
            "id": str(event.event_id),
            "source": "/veilig-haarlem/triage",
            "type": event.ce_type,
            "subject": str(event.incident_id),
            "time": event.occurred_at,
            "datacontenttype": "application/json",
        },
        data=event.model_dump(mode="json"),
    )
    message = to_binary(sdk_event, JSONFormat(), key_mapper=lambda _: str(event.incident_id))
    assert decode(message.headers, message.value) == event


def _headers_with(event: Event, **changes: str | None) -> dict[str, str]:
    headers = encode(event).text_headers()
    for name, value in changes.items():
        name = name.replace("_dash_", "-")
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return headers


def test_a_body_of_the_wrong_type_is_rejected_naming_the_fields() -> None:
    reported = EXAMPLES[IncidentReported]
    headers = _headers_with(reported, ce_type=IncidentTriaged.ce_type)
    with pytest.raises(EnvelopeError) as caught:
        decode(headers, encode(reported).value)
    message = str(caught.value)
    assert "body is not a valid nl.haarlem.veilig.incident.triaged.v1" in message
    assert "category: Field required" in message
    assert {"field": "priority", "reason": "Field required"} in caught.value.problems


def test_an_unknown_version_is_rejected_naming_the_versions_we_read() -> None:
    reported = EXAMPLES[IncidentReported]
    headers = _headers_with(reported, ce_type="nl.haarlem.veilig.incident.reported.v3")
    with pytest.raises(
        EnvelopeError, match=r"header ce_type: .*reported\.v3.*unknown version"
    ) as c:
        decode(headers, encode(reported).value)
    assert "incident.reported.v1, nl.haarlem.veilig.incident.reported.v2" in str(c.value)
    assert c.value.header == "ce_type"


def test_an_unknown_type_is_rejected() -> None:
    headers = _headers_with(EXAMPLES[IncidentReported], ce_type="com.example.thing.v1")
    with pytest.raises(EnvelopeError, match="unknown event type"):
        decode(headers, b"{}")


@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"ce_specversion": None}, "ce_specversion"),
        ({"ce_specversion": "0.3"}, "ce_specversion"),
        ({"ce_type": None}, "ce_type"),
        ({"ce_id": None}, "ce_id"),
        ({"ce_source": None}, "ce_source"),
        ({"ce_id": "0b0e7c52-6a4f-4f55-9a4c-3d9e2b1f0a11"}, "ce_id"),
        ({"ce_source": "/veilig-haarlem/notify"}, "ce_source"),
        ({"ce_subject": "not-the-incident"}, "ce_subject"),
        ({"content_dash_type": "application/xml"}, "content-type"),
    ],
)
def test_bad_headers_are_rejected_naming_the_header(
    changes: dict[str, str | None], header: str
) -> None:
    event = EXAMPLES[IncidentReported]
    with pytest.raises(EnvelopeError, match=f"header {header}") as caught:
        decode(_headers_with(event, **changes), encode(event).value)
    assert caught.value.header == header


def test_content_type_parameters_are_accepted() -> None:
    event = EXAMPLES[IncidentReported]
    headers = _headers_with(event, content_dash_type="application/json; charset=utf-8")
    assert decode(headers, encode(event).value) == event


def test_repeated_headers_must_agree() -> None:
    message = encode(EXAMPLES[IncidentReported])
    doubled = [*message.headers, ("ce_type", IncidentTriaged.ce_type.encode())]
    with pytest.raises(EnvelopeError, match="given twice"):
        decode(doubled, message.value)


def test_a_header_repeated_with_the_same_value_is_one_header() -> None:
    message = encode(EXAMPLES[IncidentReported])
    doubled = [*message.headers, ("CE_TYPE", IncidentReported.ce_type.encode())]
    assert decode(doubled, message.value) == EXAMPLES[IncidentReported]


def test_decode_wanted_skips_other_types_without_reading_the_body() -> None:
    message = encode(EXAMPLES[NotificationFailed])
    assert decode_wanted(message.headers, b"not json", {IncidentReported.ce_type}) is None
    wanted = {NotificationFailed.ce_type}
    assert decode_wanted(message.headers, message.value, wanted) == EXAMPLES[NotificationFailed]
    with pytest.raises(EnvelopeError, match="Invalid JSON"):
        decode_wanted(message.headers, b"not json", wanted)
    # Headers that cannot be read are an error whatever the type (the consumer dead-letters it).
    unreadable = [(k, b"\xff" if k == "ce_id" else v) for k, v in message.headers]
    with pytest.raises(EnvelopeError, match="not UTF-8"):
        decode_wanted(unreadable, message.value, {IncidentReported.ce_type})


def test_a_header_that_is_not_utf8_is_rejected() -> None:
    message = encode(EXAMPLES[IncidentReported])
    headers = [(k, b"\xff" if k == "ce_id" else v) for k, v in message.headers]
    with pytest.raises(EnvelopeError, match="header ce_id: not UTF-8"):
        decode(headers, message.value)


def test_invalid_json_is_rejected() -> None:
    event = EXAMPLES[IncidentReported]
    with pytest.raises(EnvelopeError, match=r"\(body\): Invalid JSON"):
        decode(encode(event).headers, b'{"event_id": ')


def test_reporter_contact_is_never_published_in_the_clear() -> None:
    opened = EXAMPLES[IncidentReported].model_copy(
        update={"reporter": Reporter(name="J. Jansen"), "reporter_sealed": None}
    )
    with pytest.raises(EnvelopeError, match="reporter is never published in the clear"):
        encode(opened)


def test_unknown_fields_are_ignored_when_reading_but_refused_when_building() -> None:
    event = EXAMPLES[IncidentReported]
    message = encode(event)
    body = {**json.loads(message.value), "added_in_a_later_release": 1}
    body["location"]["added_too"] = True
    assert decode(message.headers, json.dumps(body).encode()) == event
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        IncidentReported(**event.model_dump(), reporter_seald="typo")


def test_event_type_reads_the_header_only() -> None:
    message = encode(EXAMPLES[NotificationFailed])
    assert event_type(message.headers) == NotificationFailed.ce_type
    assert event_type(message.text_headers()) == NotificationFailed.ce_type
    assert event_type([("content-type", b"application/json")]) is None
    assert event_type([("ce_type", b"\xff")]) is None  # unreadable: decode will say why


@pytest.mark.parametrize("traceparent", ["nonsense", "ff-" + TRACEPARENT[3:], TRACEPARENT.upper()])
def test_malformed_trace_context_is_refused(traceparent: str) -> None:
    with pytest.raises(EnvelopeError, match="traceparent"):
        encode(EXAMPLES[IncidentReported], traceparent=traceparent)


def test_tracestate_needs_a_traceparent() -> None:
    with pytest.raises(EnvelopeError, match="tracestate"):
        encode(EXAMPLES[IncidentReported], tracestate="vh=1")


def test_encoded_message_serves_aiokafka_and_faststream() -> None:
    message = encode(EXAMPLES[IncidentReported], traceparent=TRACEPARENT)
    assert isinstance(message, EncodedMessage)
    assert dict(message.headers) == {k: v.encode() for k, v in message.text_headers().items()}


def test_validation_errors_name_field_and_reason() -> None:
    class Inner(BaseModel):
        lat: float = Field(le=90)

    class Outer(BaseModel):
        items: list[Inner]

    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"items": [{"lat": 1}, {"lat": 91}]})
    assert validation_errors(caught.value) == [
        {"field": "items[1].lat", "reason": "Input should be less than or equal to 90"}
    ]


# --- property: arbitrary valid events round-trip ----------------------------------------------

AWARE = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, AMSTERDAM, timezone(timedelta(hours=-3, minutes=-30))]),
    allow_imaginary=False,
)
CATEGORY = st.sampled_from(taxonomy().category_codes)
PRIORITY = st.sampled_from(["P1", "P2", "P3", "P4"])
PROFILE = st.sampled_from(list(Profile))
BUURT = st.sampled_from(geo.buurten())
PARTNER = st.from_regex(PLACEHOLDERS["partner"], fullmatch=True)
RECIPIENT = st.sampled_from(taxonomy().recipients).flatmap(
    lambda kind: st.builds(
        RecipientRule(code=kind.code).render,
        wijk=BUURT.map(lambda b: b.wijk_code),
        buurt=BUURT.map(lambda b: b.code),
        partner=PARTNER,
    )
)
NUMBER = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)


def text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    # Lengths well below the limits keep examples fast; the limits have their own tests.
    return st.text(min_size=min_size, max_size=min(max_size, 60))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def pair(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    return st.lists(strategy, min_size=2, max_size=2, unique=True).map(tuple)


LOCATION = st.one_of(
    st.builds(
        lambda lat, lon, b, address: Location(
            lat=lat,
            lon=lon,
            address=address,
            buurt_code=b and b.code,
            wijk_code=b and b.wijk_code,
            resolution="point",
            inside_haarlem=b is not None,
        ),
        st.floats(-90, 90),
        st.floats(-180, 180),
        maybe(BUURT),
        maybe(text(500)),
    ),
    BUURT.map(lambda b: geo.locate(buurt_code=b.code)),
    text(500).map(lambda a: geo.locate(address=a)),
    st.just(geo.locate()),
)


def envelope(cls: type[Event]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "event_id": st.uuids(),
        "incident_id": st.uuids(),
        "occurred_at": AWARE,
        "recorded_at": AWARE,
        "producer": st.sampled_from(cls.topic.publishers),
    }


def safety_plan(cls: type[Event]) -> dict[str, st.SearchStrategy[Any]]:
    about_incident = envelope(cls)
    del about_incident["incident_id"]
    return {
        **about_incident,
        "wijk_code": BUURT.map(lambda b: b.wijk_code),
        "version": st.integers(1, 1000),
        "actor": text(100, 1),
    }


def notification(cls: type[Event]) -> dict[str, st.SearchStrategy[Any]]:
    return {**envelope(cls), "message_id": st.uuids(), "recipient": RECIPIENT}


def _changed(cls: type[Event], old: str, new: str, values: st.SearchStrategy[Any]) -> Any:
    return st.builds(
        lambda kw, on: cls(**kw, **{old: on[0], new: on[1]}),
        st.fixed_dictionaries(
            {
                **envelope(cls),
                "actor": text(100, 1) if cls is IncidentReclassified else maybe(text(100)),
                "reason": maybe(text(1000)),
                **(
                    {"acknowledge_by": AWARE, "handle_by": AWARE}
                    if cls is IncidentPriorityChanged
                    else {}
                ),
            }
        ),
        pair(values),
    )


STRATEGIES: dict[type[Event], st.SearchStrategy[Event]] = {
    IncidentReported: st.builds(
        IncidentReported,
        **envelope(IncidentReported),
        partner=PARTNER,
        channel=st.sampled_from(["http", "open311", "kafka"]),
        external_id=text(200, 1),
        description=text(4000),
        category_hint=maybe(CATEGORY),
        location=LOCATION,
        flags=st.builds(Flags, victim_role=maybe(text(100))),
        reporter_sealed=maybe(text(4000)),
        attributes=st.dictionaries(text(64, 1), text(1000) | NUMBER | st.booleans(), max_size=5),
    ),
    IncidentTriaged: st.builds(
        IncidentTriaged,
        **envelope(IncidentTriaged),
        category=CATEGORY,
        priority=PRIORITY,
        confidence=st.floats(0, 1),
        reasons=st.lists(text(500), max_size=4).map(tuple),
        top_categories=st.lists(
            st.builds(CategoryProbability, category=CATEGORY, probability=st.floats(0, 1)),
            max_size=3,
        ).map(tuple),
        needs_review=st.booleans(),
        buurt_code=maybe(BUURT.map(lambda b: b.code)),
        wijk_code=maybe(BUURT.map(lambda b: b.wijk_code)),
        acknowledge_by=AWARE,
        handle_by=AWARE,
        recipients=st.lists(st.builds(Recipient, code=RECIPIENT, profile=PROFILE), max_size=4).map(
            tuple
        ),
        report_count=st.integers(1, 1000),
    ),
    IncidentMerged: st.builds(
        lambda kw, ids: IncidentMerged(**kw, incident_id=ids[0], duplicate_incident_id=ids[1]),
        st.fixed_dictionaries(
            {
                **{k: v for k, v in envelope(IncidentMerged).items() if k != "incident_id"},
                "report_count": st.integers(2, 1000),
                "actor": maybe(text(100)),
                "reason": maybe(text(1000)),
            }
        ),
        pair(st.uuids()),
    ),
    IncidentReclassified: _changed(IncidentReclassified, "old_category", "new_category", CATEGORY),
    IncidentPriorityChanged: _changed(
        IncidentPriorityChanged, "old_priority", "new_priority", PRIORITY
    ),
    IncidentStatusChanged: _changed(
        IncidentStatusChanged,
        "old_status",
        "new_status",
        st.sampled_from(["reported", "triaged", "in_progress", "on_hold", "reopened"]),
    ),
    IncidentAssigned: st.builds(
        IncidentAssigned,
        **envelope(IncidentAssigned),
        owner=maybe(text(100)),
        previous_owner=maybe(text(100)),
        actor=maybe(text(100)),
        reason=maybe(text(1000)),
    ),
    IncidentDeadlineMissed: st.builds(
        IncidentDeadlineMissed,
        **envelope(IncidentDeadlineMissed),
        handle_by=AWARE,
        priority=PRIORITY,
        status=st.sampled_from(["triaged", "acknowledged", "in_progress", "on_hold", "reopened"]),
    ),
    IncidentPersonalDataErased: st.builds(
        IncidentPersonalDataErased,
        **envelope(IncidentPersonalDataErased),
        reason=st.sampled_from(["retention", "erasure"]),
        retention_days=maybe(st.integers(1, 3650)),
        actor=text(100, min_size=1),
    ),
    IncidentAcknowledged: st.builds(
        IncidentAcknowledged,
        **envelope(IncidentAcknowledged),
        recipient=RECIPIENT,
        acknowledged_by=maybe(text(100)),
        message_id=maybe(st.uuids()),
    ),
    IncidentResolved: st.builds(
        IncidentResolved,
        **envelope(IncidentResolved),
        outcome=st.sampled_from(["handled", "no_action_needed", "referred", "unfounded"]),
        resolved_by=maybe(RECIPIENT),
        actor=maybe(text(100)),
        note=maybe(text(2000)),
    ),
    IncidentWithdrawalRequested: st.builds(
        IncidentWithdrawalRequested,
        **envelope(IncidentWithdrawalRequested),
        partner=PARTNER,
        external_id=text(200, 1),
        reason=text(1000, 1),
    ),
    IncidentZorgsignaalRaised: st.builds(
        IncidentZorgsignaalRaised,
        **envelope(IncidentZorgsignaalRaised),
        signal_id=st.uuids(),
        incidents=st.lists(st.uuids(), min_size=2, max_size=5).map(tuple),
        categories=st.lists(CATEGORY, min_size=1, max_size=3, unique=True).map(tuple),
        matched_on=st.sampled_from(["point", "address"]),
        window_days=st.integers(1, 365),
        buurt_code=maybe(BUURT.map(lambda b: b.code)),
        wijk_code=maybe(BUURT.map(lambda b: b.wijk_code)),
        recipient=RECIPIENT,
    ),
    SafetyPlanAdopted: st.builds(
        lambda kw, days: SafetyPlanAdopted(**kw, starts_on=min(days), ends_on=max(days)),
        st.fixed_dictionaries(
            {
                **safety_plan(SafetyPlanAdopted),
                "categories": st.lists(CATEGORY, min_size=1, max_size=5, unique=True).map(tuple),
                "adopted_by": text(200, 1),
                "adopted_on": st.dates(),
            }
        ),
        st.lists(st.dates(), min_size=2, max_size=2),
    ),
    SafetyPlanEnded: st.builds(
        SafetyPlanEnded,
        **safety_plan(SafetyPlanEnded),
        ends_on=st.dates(),
        reason=maybe(text(1000)),
    ),
    NotificationDispatched: st.builds(
        NotificationDispatched,
        **notification(NotificationDispatched),
        channel=st.sampled_from(["webhook", "cap", "email"]),
        profile=PROFILE,
        priority=PRIORITY,
        attempt=st.integers(1, 50),
        webhook_id=maybe(text(100)),
        cap_identifier=maybe(text(200)),
        cap_msg_type=maybe(st.sampled_from(["Alert", "Update", "Cancel"])),
        acknowledge_by=maybe(AWARE),
    ),
    NotificationDelivered: st.builds(
        NotificationDelivered,
        **notification(NotificationDelivered),
        channel=st.sampled_from(["webhook", "cap", "email"]),
        attempt=st.integers(1, 50),
        status_code=maybe(st.integers(100, 599)),
    ),
    NotificationFailed: st.builds(
        NotificationFailed,
        **notification(NotificationFailed),
        channel=st.sampled_from(["webhook", "cap", "email"]),
        attempt=st.integers(1, 50),
        error=text(2000),
        status_code=maybe(st.integers(100, 599)),
        final=st.booleans(),
        next_attempt_at=maybe(AWARE),
    ),
    NotificationEscalated: st.builds(
        NotificationEscalated,
        **notification(NotificationEscalated),
        level=st.integers(1, 10),
        reason=st.sampled_from(["not_acknowledged", "delivery_failed"]),
        escalated_to=st.lists(RECIPIENT, min_size=1, max_size=3).map(tuple),
        deadline=maybe(AWARE),
    ),
    NotificationAcknowledged: st.builds(
        NotificationAcknowledged,
        **notification(NotificationAcknowledged),
        channel=st.sampled_from(["webhook", "cap", "email"]),
        acknowledged_by=maybe(text(100)),
    ),
    NotificationEscalationScheduled: st.builds(
        NotificationEscalationScheduled,
        **notification(NotificationEscalationScheduled),
        level=st.integers(0, 10),
        escalate_at=maybe(AWARE),
        stopped=maybe(st.sampled_from(get_args(EscalationStop))),
    ),
}
STRATEGIES[IncidentReportedSealed] = st.builds(
    lambda report, sealed: IncidentReportedSealed(
        **erase_report(report).model_dump(exclude={"schema_version"}), personal_sealed=sealed
    ),
    STRATEGIES[IncidentReported],
    st.builds(SealedPersonal, key_id=st.uuids(), period=st.dates(), ciphertext=text(2000, 1)),
)


def test_every_event_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(REGISTRY.values())


@pytest.mark.parametrize("cls", [pytest.param(c, id=c.__name__) for c in STRATEGIES])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arbitrary_valid_events_round_trip(cls: type[Event], data: st.DataObject) -> None:
    event = data.draw(STRATEGIES[cls])
    message = encode(event)
    decoded = decode(message.headers, message.value)
    assert decoded == event
    assert type(decoded) is cls
    # Through JSON text too, as a consumer in another language would see it.
    assert json.loads(message.value) == json.loads(decoded.model_dump_json())
