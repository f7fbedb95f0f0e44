"""Publish the event contracts: a JSON Schema per event and one AsyncAPI 3.0 document.

    python -m schemas.generate          # write schemas/jsonschema/*.json, schemas/asyncapi.yaml
    python -m schemas.generate --check  # exit 1 if the committed files are stale

The committed files are the contract. Writing refuses to replace a committed event schema with
an incompatible one (see :mod:`schemas.compat`): bump the event's version instead (a new class
with ``.v<N+1>``, hence a new file). ``--allow-breaking`` overrides that for a type that was
never released. Output is deterministic (sorted keys, fixed order), so tests compare bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from schemas.compat import breaking_changes
from schemas.envelope import SOURCE_PREFIX, SPECVERSION, encode
from schemas.events import REGISTRY, Event, SafetyPlanEvent
from schemas.examples import EXAMPLES
from schemas.submission import IncidentSubmission
from schemas.topics import ALL_TOPICS, INCIDENT_SUBMISSIONS, Topic

ROOT = Path(__file__).parent
JSONSCHEMA_DIR = ROOT / "jsonschema"
ASYNCAPI_PATH = ROOT / "asyncapi.yaml"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
API_VERSION = "1.0.0"
SUBMISSION = "IncidentSubmission"
DEAD_LETTER = "DeadLetter"


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """The JSON Schema of an event body (validation mode: what a consumer accepts)."""
    return {
        "$schema": DIALECT,
        "x-cloudevents-type": cls.ce_type,
        "x-kafka-topic": cls.topic.name,
        **cls.model_json_schema(mode="validation"),
    }


def schema_path(ce_type: str) -> Path:
    return JSONSCHEMA_DIR / f"{ce_type}.json"


def render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(
        document, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100
    )


def _channel_id(topic: Topic) -> str:
    # AsyncAPI keys allow no dots: incident-events.dlq -> incidentEventsDlq
    words = topic.name.replace(".", "-").split("-")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _subject(cls: type[Event]) -> dict[str, Any]:
    """The CloudEvents subject and Kafka key of an event class: what its events are about."""
    if issubclass(cls, SafetyPlanEvent):
        return {"type": "string", "pattern": r"^WK\d{6}$", "description": "The wijk_code."}
    return {"type": "string", "format": "uuid", "description": "The incident_id."}


def _ce_headers(ce_type: str, subject: dict[str, Any]) -> dict[str, Any]:
    producers = "|".join(("intake", "triage", "notify", "analytics"))
    return {
        "type": "object",
        "description": "CloudEvents 1.0 Kafka binary content mode, plus W3C trace context.",
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "content-type",
        ],
        "properties": {
            "ce_specversion": {"type": "string", "const": SPECVERSION},
            "ce_id": {"type": "string", "format": "uuid", "description": "The event_id."},
            "ce_source": {
                "type": "string",
                "pattern": f"^{SOURCE_PREFIX}({producers})$",
                "description": "The producing service.",
            },
            "ce_type": {"type": "string", "const": ce_type},
            "ce_time": {
                "type": "string",
                "format": "date-time",
                "description": "occurred_at, RFC 3339 in UTC.",
            },
            "ce_subject": subject,
            "content-type": {"type": "string", "const": "application/json"},
            "traceparent": {"type": "string", "description": "W3C Trace Context traceparent."},
            "tracestate": {"type": "string", "description": "W3C Trace Context tracestate."},
        },
    }


def _summary(cls: type[Event]) -> str:
    return (cls.__doc__ or cls.__name__).strip().splitlines()[0]


def _event_message(cls: type[Event]) -> dict[str, Any]:
    encoded = encode(EXAMPLES[cls])
    return {
        "name": cls.ce_type,
        "title": cls.__name__,
        "summary": _summary(cls),
        "description": " ".join((cls.__doc__ or "").split()),
        "contentType": "application/json",
        "headers": _ce_headers(cls.ce_type, _subject(cls)),
        "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
        "bindings": {
            "kafka": {
                "key": _subject(cls),
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "examples": [
            {
                "name": f"{cls.__name__}Example",
                "headers": encoded.text_headers(),
                "payload": json.loads(encoded.value),
            }
        ],
    }


def _submission_message() -> dict[str, Any]:
    # Partner systems' raw reports; their fields are intake's partner API, not an event.
    return {
        "name": SUBMISSION,
        "title": "Incident submission",
        "summary": "A partner's raw report, produced directly to Kafka.",
        "description": "The same body as the partner API's POST /v1/incidents; intake turns an "
        "accepted submission into IncidentReported and dead-letters an invalid one.",
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/IncidentSubmission"},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "external_id; it only spreads the partitions: the partner "
                    "is the topic, never the key",
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _dead_letter_message() -> dict[str, Any]:
    # What services/common/dlq.py seal_dead_letter writes (docs/decisions/0010).
    text = {"type": "string"}
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "A record a consumer could not process, sealed with the day's period key.",
        "description": "The value is a Fernet token (the period key of the day it was "
        "dead-lettered, ops.period_keys; destroyed by the personal-data purge) of the original "
        'record, zlib-compressed: one JSON line {"headers": [[name, <base64>], ...]}, a newline, '
        "then the original value as it was. The headers say why and from where and carry no "
        "content; the reason is sealed too. `veilig dlq show` and `veilig dlq replay` open it.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {
                "x-dlq-sealed": {
                    "type": "string",
                    "pattern": "^(period:[0-9a-f-]{36}|pii)$",
                    "description": "The key that sealed it: period:<key id>, or pii (before "
                    "period keys).",
                },
                "x-dlq-reason": {**text, "description": "The error, sealed (Fernet token)."},
                "x-dlq-kind": {**text, "description": "What class of problem."},
                "x-dlq-service": {**text, "description": "The service that gave up."},
                "x-dlq-source-topic": text,
                "x-dlq-source-partition": text,
                "x-dlq-source-offset": text,
                "x-dlq-attempts": text,
            },
        },
        "payload": {**text, "description": "Fernet token."},
    }


def _topic_messages(topic: Topic, by_name: dict[str, Topic]) -> list[str]:
    if topic.name.endswith(".dlq"):
        return [DEAD_LETTER]
    source = topic
    if source.copies_of is not None:
        source = by_name[source.copies_of]
    if source is INCIDENT_SUBMISSIONS:
        return [SUBMISSION]
    return [cls.__name__ for cls in REGISTRY.values() if cls.topic is source]


def channel_address(topic: Topic) -> str:
    """A topic's address; a per-partner family's has the partner as a parameter."""
    return f"{topic.name}.{{partner}}" if topic.per_partner else topic.name


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the whole platform, from topics.py and the registry."""
    _, defs = models_json_schema(
        [(cls, "validation") for cls in (*REGISTRY.values(), IncidentSubmission)],
        ref_template="#/components/schemas/{model}",
    )
    messages: dict[str, Any] = {cls.__name__: _event_message(cls) for cls in REGISTRY.values()}
    messages[SUBMISSION] = _submission_message()
    messages[DEAD_LETTER] = _dead_letter_message()
    by_name = {t.name: t for t in ALL_TOPICS}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        cid = _channel_id(topic)
        names = _topic_messages(topic, by_name)
        channels[cid] = {
            "address": channel_address(topic),
            "description": f"{topic.description} Key: {topic.key}.",
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            **(
                {
                    "parameters": {
                        "partner": {
                            "description": "The partner's code: its principal alone may "
                            "write this topic (veilig partners add CODE --kafka)."
                        }
                    }
                }
                if topic.per_partner
                else {}
            ),
            "bindings": {
                "kafka": {
                    "topic": channel_address(topic),
                    "partitions": topic.partitions,
                    "topicConfiguration": {
                        "cleanup.policy": [topic.cleanup_policy],
                        "retention.ms": topic.retention_ms,
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        for action, actors in (("send", topic.publishers), ("receive", topic.subscribers)):
            for actor in actors:
                operations[f"{actor}_{action}_{cid}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{cid}"},
                    "summary": f"{actor} {action}s on {topic.name}",
                    "tags": [{"name": actor}],
                    "messages": [{"$ref": f"#/channels/{cid}/messages/{n}"} for n in names],
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Veilig Haarlem events",
            "version": API_VERSION,
            "description": "Every Kafka topic, message and producer/consumer of the Veilig "
            "Haarlem platform. Events are CloudEvents 1.0 in Kafka binary content mode with "
            "JSON bodies; fields marked x-disclosure / x-personal-data are minimised per "
            "recipient profile.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": defs["$defs"], "messages": messages},
    }


def generated_files() -> dict[Path, str]:
    """Every published file and its content, in memory."""
    files = {schema_path(t): render_json(event_schema(cls)) for t, cls in REGISTRY.items()}
    files[ASYNCAPI_PATH] = render_yaml(asyncapi_document())
    return files


def stale_files() -> list[str]:
    """Published files that differ from what the code generates, or should not be there."""
    files = generated_files()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text("utf-8") != text]
    stale += [p for p in JSONSCHEMA_DIR.glob("*.json") if p not in files]
    return sorted(str(p.relative_to(ROOT.parent)) for p in stale)


def incompatible(
    registry: Mapping[str, type[Event]] = REGISTRY, directory: Path = JSONSCHEMA_DIR
) -> dict[str, list[str]]:
    """ce_type -> breaking changes of the current schema against the committed file.

    A new version is a new ce_type and so a new file: it is compared with nothing.
    """
    found: dict[str, list[str]] = {
        path.stem: ["event type removed; the log may still hold its events"]
        for path in directory.glob("*.json")
        if path.stem not in registry
    }
    for ce_type, cls in registry.items():
        path = directory / f"{ce_type}.json"
        if path.exists():
            changes = breaking_changes(json.loads(path.read_text("utf-8")), event_schema(cls))
            if changes:
                found[ce_type] = changes
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument(
        "--allow-breaking", action="store_true", help="overwrite incompatible schemas"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    breaking = incompatible()
    if breaking and not args.allow_breaking:
        for ce_type, changes in breaking.items():
            print(f"{ce_type}: breaking changes; add a new version instead:", file=sys.stderr)
            for change in changes:
                print(f"  - {change}", file=sys.stderr)
        return 1
    files = generated_files()
    for path in JSONSCHEMA_DIR.glob("*.json"):
        if path not in files:
            path.unlink()
    JSONSCHEMA_DIR.mkdir(exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files under {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
