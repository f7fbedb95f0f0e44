"""Every consumer's decoder, fuzzed: whatever bytes and headers arrive, decoding a record
never raises (so it can never stall a partition); it yields the item, a skip, or the poison
to dead-letter with its reason. Valid records still decode to what was sent."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.envelope import encode
from schemas.events import REGISTRY, Event
from schemas.examples import EXAMPLES
from services.analytics.projection import HANDLED
from services.common.consumer import Parser, PoisonMessage, decode_record, event_parser
from services.common.settings import Settings
from services.intake.handlers import Submission, submission_parser
from tests.integration.test_intake import report

ALL_EVENTS = tuple(REGISTRY.values())
# The decoders the services subscribe with (services/*/handlers.py, analytics/consumers.py).
parse_submission = submission_parser(Settings(topic_prefix="p."))
PARSERS: dict[str, Parser[Any]] = {
    "intake:submissions": parse_submission,
    "events:all": event_parser(*ALL_EVENTS),
    "analytics": event_parser(*HANDLED),
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def record(
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    topic: str = "p.incident-submissions.politie",
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers,
    )


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
        max_leaves=20,
    )


def nasty_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        json_values().map(lambda v: json.dumps(v).encode()),
        st.integers(1_000, 200_000).map(lambda n: b"[" * n),
        st.integers(1_000, 50_000).map(lambda n: b'{"a":' * n),
        st.integers(5_000, 20_000).map(lambda n: b"1" * n),  # beyond int's digit limit
        st.sampled_from([b"", b"null", b"NaN", b"\xff\xfe", b'"\\ud800"', b"1e999999"]),
    )


ce_types = st.sampled_from([*REGISTRY, "nl.haarlem.veilig.incident.reported.v9", "x", ""])
header_names = st.sampled_from(
    ["ce_type", "ce_id", "ce_source", "ce_specversion", "ce_subject", "content-type", "x"]
)
headers = st.lists(
    st.tuples(header_names, st.one_of(ce_types.map(str.encode), st.binary(max_size=40))),
    max_size=8,
)


@FUZZ
@given(
    key=st.one_of(st.none(), st.binary(max_size=60), st.just(b"politie:X-1")),
    value=st.one_of(st.none(), nasty_bodies()),
    hdrs=headers,
)
def test_no_decoder_raises_on_anything(
    key: bytes | None, value: bytes | None, hdrs: list[tuple[str, bytes]]
) -> None:
    for name, parse in PARSERS.items():
        out = decode_record(parse, record(key, value, hdrs))
        if isinstance(out, PoisonMessage):
            assert out.reason and out.kind, name


def mutate(data: bytes, position: int, byte: int) -> bytes:
    if not data:
        return data
    i = position % len(data)
    return data[:i] + bytes([byte]) + data[i + 1 :]


@FUZZ
@given(
    example=st.sampled_from(list(EXAMPLES.values())),
    position=st.integers(0, 10_000),
    byte=st.integers(0, 255),
    drop=st.sets(header_names),
)
def test_damaged_events_are_poison_or_decoded_never_a_crash(
    example: Event, position: int, byte: int, drop: set[str]
) -> None:
    encoded = encode(example)
    kept = [(n, v) for n, v in encoded.headers if n not in drop]
    damaged = record(encoded.key, mutate(encoded.value, position, byte), kept)
    out = decode_record(PARSERS["events:all"], damaged)
    assert out is None or isinstance(out, PoisonMessage | Event)


def test_a_valid_event_still_decodes_to_itself() -> None:
    for example in EXAMPLES.values():
        encoded = encode(example)
        out = decode_record(
            PARSERS["events:all"], record(encoded.key, encoded.value, list(encoded.headers))
        )
        assert out == example


def test_a_valid_submission_still_decodes_as_its_topics_partner_whatever_its_key() -> None:
    body = json.dumps(report("K-1")).encode()
    out = decode_record(parse_submission, record(b"K-1", body, []))
    assert isinstance(out, Submission) and out.partner == "politie"
    # A key (or header) naming another partner changes nothing: the topic says who sent it.
    forged = record(
        b"brandweer:K-1", body, [("partner", b"brandweer")], "p.incident-submissions.wijkapp"
    )
    out = decode_record(parse_submission, forged)
    assert isinstance(out, Submission) and out.partner == "wijkapp"


def test_deep_nesting_is_poison_with_its_reason() -> None:
    out = decode_record(parse_submission, record(b"K-1", b"[" * 100_000, []))
    assert isinstance(out, PoisonMessage)
    assert out.kind == "invalid-json" and "nested too deeply" in out.reason


def test_a_decoder_bug_is_poison_too() -> None:
    def broken(_: ConsumerRecord[bytes, bytes]) -> None:
        raise KeyError("surprise")

    out = decode_record(broken, record(b"k", b"v", []))
    assert isinstance(out, PoisonMessage)
    assert out.kind == "undecodable" and "KeyError" in out.reason
