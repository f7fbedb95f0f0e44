"""The one way events go on and come off Kafka: CloudEvents 1.0, Kafka binary content mode.

A message is

* key: the event's subject (UTF-8): the incident id, so all events of an incident share a
  partition and an order (a safety-plan event: the wijk code);
* headers: ``ce_specversion`` ``1.0``, ``ce_id`` (the event id), ``ce_source``
  (``/veilig-haarlem/<producer>``), ``ce_type`` (the versioned event type), ``ce_time``
  (``occurred_at``, RFC 3339), ``ce_subject`` (the subject), ``content-type``
  ``application/json``, and W3C ``traceparent`` / ``tracestate`` when given;
* value: the event as JSON.

Publishing: ``EncodedMessage.headers`` is a tuple of ``(str, bytes)`` pairs, the form
aiokafka's ``send(headers=...)`` takes and ``ConsumerRecord.headers`` has (the outbox relay
publishes with aiokafka); :meth:`EncodedMessage.text_headers` gives the ``dict[str, str]`` that
FastStream's ``broker.publish(value, topic, key=key, headers=...)`` takes. Consuming:
:func:`decode` and :func:`event_type` accept either form (aiokafka's ``ConsumerRecord.headers``
or FastStream's ``msg.headers``).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from pydantic import ValidationError

from schemas.events import REGISTRY, Event, IncidentReported
from schemas.taxonomy import field_path

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
SOURCE_PREFIX = "/veilig-haarlem/"

# W3C Trace Context level 1; version ff is forbidden.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_VERSION_SUFFIX = re.compile(r"\.v\d+$")

Headers = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]]
"""Kafka headers as FastStream (``dict[str, str]``) or aiokafka (pairs of str, bytes) has them."""


class FieldProblem(TypedDict):
    """Which field is wrong and why; for problem details and dead-letter headers."""

    field: str
    reason: str


class EnvelopeError(ValueError):
    """A message that is not a valid event of this platform. The text says where and why."""

    def __init__(
        self, message: str, *, header: str | None = None, problems: list[FieldProblem] | None = None
    ) -> None:
        super().__init__(message)
        self.header = header
        self.problems = problems or []


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """An event ready to publish on ``topic``."""

    topic: str
    key: bytes
    headers: tuple[tuple[str, bytes], ...]
    value: bytes

    def text_headers(self) -> dict[str, str]:
        """The headers as FastStream's ``publish(headers=...)`` takes them."""
        return {name: value.decode() for name, value in self.headers}


def validation_errors(exc: ValidationError) -> list[FieldProblem]:
    """A pydantic ValidationError as a list of {field, reason}; the body itself is ``(body)``."""
    return [
        FieldProblem(field=field_path(err["loc"]) or "(body)", reason=err["msg"])
        for err in exc.errors(include_url=False)
    ]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def source_of(event: Event) -> str:
    """The CloudEvents source of an event: ``/veilig-haarlem/<producer>``."""
    return f"{SOURCE_PREFIX}{event.producer}"


def encode(
    event: Event, *, traceparent: str | None = None, tracestate: str | None = None
) -> EncodedMessage:
    """Put an event in a Kafka binary-mode CloudEvents message."""
    if REGISTRY.get(event.ce_type) is not type(event):
        raise TypeError(f"{type(event).__name__} is not a registered event class")
    if traceparent is not None and not _TRACEPARENT.fullmatch(traceparent):
        raise EnvelopeError(
            f"traceparent {traceparent!r} is not W3C trace context", header="traceparent"
        )
    if tracestate is not None and traceparent is None:
        raise EnvelopeError("tracestate without traceparent", header="tracestate")
    # Kafka keeps the log forever; contact details go out sealed so a dropped key purges them.
    if isinstance(event, IncidentReported) and event.reporter is not None:
        raise EnvelopeError("reporter is never published in the clear; use reporter_sealed")
    subject = event.subject
    headers = {
        "ce_specversion": SPECVERSION,
        "ce_id": str(event.event_id),
        "ce_source": source_of(event),
        "ce_type": event.ce_type,
        "ce_time": _rfc3339(event.occurred_at),
        "ce_subject": subject,
        "content-type": CONTENT_TYPE,
    }
    if traceparent is not None:
        headers["traceparent"] = traceparent
    if tracestate is not None:
        headers["tracestate"] = tracestate
    return EncodedMessage(
        topic=event.topic.name,
        key=subject.encode(),
        headers=tuple((name, value.encode()) for name, value in headers.items()),
        value=event.model_dump_json().encode(),
    )


def _text_headers(headers: Headers) -> dict[str, str]:
    """The headers as text, names in lower case. The common case, every name once and every
    value UTF-8, in one pass; anything else goes the slow way, which says what is wrong."""
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    try:
        out = {
            name.lower(): value.decode() if isinstance(value, bytes) else value
            for name, value in pairs
        }
    except UnicodeDecodeError:
        return _checked_text_headers(pairs)
    return out if len(out) == len(pairs) else _checked_text_headers(pairs)


def _checked_text_headers(pairs: list[tuple[str, str | bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name = raw_name.lower()
        try:
            value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
        except UnicodeDecodeError:
            raise EnvelopeError(f"header {name}: not UTF-8", header=name) from None
        # Kafka allows repeated headers; two different event types or ids would be ambiguous.
        if out.get(name, value) != value:
            raise EnvelopeError(f"header {name}: given twice with different values", header=name)
        out[name] = value
    return out


def event_type(headers: Headers) -> str | None:
    """The ``ce_type`` of a message without touching its body, to skip unhandled types.

    None when the header is missing or unreadable; :func:`decode` then says what is wrong.
    """
    try:
        return _text_headers(headers).get("ce_type")
    except EnvelopeError:
        return None


def _required(headers: dict[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise EnvelopeError(
            f"header {name}: missing; not a CloudEvents binary-mode message", header=name
        )
    return value


def _unknown_type(ce_type: str) -> EnvelopeError:
    family = _VERSION_SUFFIX.sub("", ce_type)
    known = sorted(t for t in REGISTRY if _VERSION_SUFFIX.sub("", t) == family)
    if known:
        reason = f"unknown version of {family}; this release reads {', '.join(known)}"
    else:
        reason = "unknown event type"
    return EnvelopeError(f"header ce_type: {ce_type!r}: {reason}", header="ce_type")


def decode(headers: Headers, value: bytes | str) -> Event:
    """The event in a binary-mode message; :class:`EnvelopeError` says what is wrong."""
    return _decode(_text_headers(headers), value)


def decode_wanted(headers: Headers, value: bytes | str, wanted: Container[str]) -> Event | None:
    """:func:`decode` for a consumer that handles only the event types ``wanted``: None,
    without reading the body, for a message whose ``ce_type`` names another type."""
    h = _text_headers(headers)
    ce_type = h.get("ce_type")
    if ce_type is not None and ce_type not in wanted:
        return None
    return _decode(h, value)


def _decode(h: dict[str, str], value: bytes | str) -> Event:
    specversion = _required(h, "ce_specversion")
    if specversion != SPECVERSION:
        raise EnvelopeError(
            f"header ce_specversion: {specversion!r} is not supported; expected {SPECVERSION}",
            header="ce_specversion",
        )
    ce_type = _required(h, "ce_type")
    cls = REGISTRY.get(ce_type)
    if cls is None:
        raise _unknown_type(ce_type)
    media_type = h.get("content-type", CONTENT_TYPE).split(";")[0].strip().lower()
    if media_type != CONTENT_TYPE:
        raise EnvelopeError(
            f"header content-type: {media_type!r}; expected {CONTENT_TYPE}", header="content-type"
        )
    ce_id = _required(h, "ce_id")
    ce_source = _required(h, "ce_source")
    try:
        # Tolerant reader: fields added by a later release of the producer are ignored.
        event = cls.model_validate_json(value, extra="ignore")
    except ValidationError as exc:
        problems = validation_errors(exc)
        detail = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        raise EnvelopeError(f"body is not a valid {ce_type}: {detail}", problems=problems) from exc
    # The headers route and deduplicate; they must say the same as the body.
    subject = event.subject
    pairs = {
        "ce_id": (ce_id, str(event.event_id)),
        "ce_source": (ce_source, source_of(event)),
        "ce_subject": (h.get("ce_subject", subject), subject),
    }
    for name, (actual, expected) in pairs.items():
        if actual != expected:
            raise EnvelopeError(
                f"header {name}: {actual!r} does not match the body ({expected!r})", header=name
            )
    return event
