"""The published JSON Schemas and AsyncAPI document: fresh, complete and self-consistent."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from schemas.envelope import encode
from schemas.events import REGISTRY, Event
from schemas.examples import EXAMPLES
from schemas.generate import (
    ASYNCAPI_PATH,
    asyncapi_document,
    channel_address,
    generated_files,
    main,
    schema_path,
    stale_files,
)
from schemas.topics import ALL_TOPICS

DOCUMENT = yaml.safe_load(ASYNCAPI_PATH.read_text(encoding="utf-8"))


def test_committed_files_are_fresh() -> None:
    assert stale_files() == [], "regenerate with: python -m schemas.generate"


def test_the_command_line_check_agrees() -> None:
    assert main(["--check"]) == 0


def test_generation_is_deterministic() -> None:
    assert generated_files() == generated_files()


@pytest.mark.parametrize("event", EXAMPLES.values(), ids=lambda e: type(e).__name__)
def test_published_schema_accepts_what_we_produce(event: Event) -> None:
    schema = json.loads(schema_path(event.ce_type).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(json.loads(encode(event).value))
    assert schema["x-cloudevents-type"] == event.ce_type
    assert schema["x-kafka-topic"] == event.topic.name


def test_published_schema_rejects_a_missing_field() -> None:
    event = next(iter(EXAMPLES.values()))
    schema = json.loads(schema_path(event.ce_type).read_text(encoding="utf-8"))
    body = json.loads(encode(event).value)
    del body["event_id"]
    with pytest.raises(jsonschema.ValidationError, match="'event_id' is a required property"):
        jsonschema.validate(body, schema)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(pointer: str) -> Any:
    node: Any = DOCUMENT
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_asyncapi_refs_all_resolve() -> None:
    refs = _refs(DOCUMENT)
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        _resolve(ref)


def test_asyncapi_has_every_topic_and_every_operation() -> None:
    assert DOCUMENT["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in DOCUMENT["channels"].values()}
    assert addresses == {channel_address(t) for t in ALL_TOPICS}
    assert {"incident-events.dlq", "notification-events.dlq"} <= addresses
    # One topic per partner: the partner is the channel's parameter.
    (family,) = [c for c in DOCUMENT["channels"].values() if "parameters" in c]
    assert family["address"] == "incident-submissions.{partner}"
    assert set(family["parameters"]) == {"partner"}
    operations = {
        (op["tags"][0]["name"], op["action"], _resolve(op["channel"]["$ref"])["address"])
        for op in DOCUMENT["operations"].values()
    }
    expected = {(p, "send", channel_address(t)) for t in ALL_TOPICS for p in t.publishers} | {
        (s, "receive", channel_address(t)) for t in ALL_TOPICS for s in t.subscribers
    }
    assert operations == expected
    for op in DOCUMENT["operations"].values():
        channel = op["channel"]["$ref"]
        assert all(m["$ref"].startswith(f"{channel}/messages/") for m in op["messages"])


def test_asyncapi_messages_are_the_events_with_cloudevents_headers() -> None:
    messages = DOCUMENT["components"]["messages"]
    schemas = DOCUMENT["components"]["schemas"]
    for ce_type, cls in REGISTRY.items():
        message = messages[cls.__name__]
        assert message["name"] == ce_type
        assert message["headers"]["properties"]["ce_type"]["const"] == ce_type
        (example,) = message["examples"]
        resolver_root = {"components": {"schemas": schemas}, **_resolve(message["payload"]["$ref"])}
        jsonschema.validate(example["payload"], resolver_root)
        jsonschema.validate(example["headers"], message["headers"])
        channel = {
            "incident": "incidentEvents",
            "notification": "notificationEvents",
            "safety-plan": "safetyPlans",
        }[ce_type.split(".")[3]]
        assert cls.__name__ in DOCUMENT["channels"][channel]["messages"]


def test_asyncapi_in_memory_matches_the_file() -> None:
    assert asyncapi_document() == DOCUMENT
