"""CAP 1.2 alerts: schema-valid Alert / Update / Cancel, references, and the mapping tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import xmlschema

from schemas.taxonomy import Priority, taxonomy
from services.notify.cap import (
    CAP_NAMESPACE,
    CATEGORY_TO_CAP,
    PRIORITY_TO_CAP,
    SENDER,
    build_cap,
    cap_datetime,
    validate_cap,
)
from tests.unit.test_notify_messages import DESCRIPTION, REPORTER, incident

NS = {"cap": CAP_NAMESPACE}
FIRST_ID = "nl.haarlem.veilig.5f0c2a8e.1"
FIRST_SENT = datetime(2025, 3, 28, 22, 41, 20, 123456, tzinfo=UTC)
CAP_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


def parse(xml: bytes) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 - our own output, not untrusted input


def text(root: ET.Element, path: str) -> str | None:
    return root.findtext(path, namespaces=NS)


def parameters(root: ET.Element) -> dict[str, str]:
    return {
        str(p.findtext("cap:valueName", namespaces=NS)): str(p.findtext("cap:value", namespaces=NS))
        for p in root.iterfind("cap:info/cap:parameter", NS)
    }


def alert(**kwargs: Any) -> bytes:
    reported, triaged = incident(**kwargs.pop("incident", {}))
    return build_cap(
        reported,
        triaged,
        msg_type=kwargs.pop("msg_type", "Alert"),
        identifier=kwargs.pop("identifier", FIRST_ID),
        sent=kwargs.pop("sent", FIRST_SENT),
        **kwargs,
    )


def test_alert_validates_and_carries_the_full_picture() -> None:
    xml = alert(ack_url="https://veilig.haarlem.nl/ack/t0k3n?a=1&b=2")
    validate_cap(xml)
    root = parse(xml)
    assert root.tag == f"{{{CAP_NAMESPACE}}}alert"
    assert text(root, "cap:identifier") == FIRST_ID
    assert text(root, "cap:sender") == SENDER
    assert text(root, "cap:sent") == "2025-03-28T23:41:20+01:00"
    assert text(root, "cap:status") == "Actual"
    assert text(root, "cap:msgType") == "Alert"
    assert text(root, "cap:scope") == "Restricted"
    assert text(root, "cap:restriction")
    assert root.find("cap:references", NS) is None
    assert text(root, "cap:incidents") == "5f0c2a8e-3c1b-4e7a-9d2f-0a1b2c3d4e5f"
    assert text(root, "cap:info/cap:language") == "nl-NL"
    assert text(root, "cap:info/cap:event") == "woninginbraak"
    assert text(root, "cap:info/cap:headline") == "P1 woninginbraak, Binnenstad (Oude Stad)"
    assert text(root, "cap:info/cap:description") == DESCRIPTION
    assert text(root, "cap:info/cap:onset") == "2025-03-28T23:38:05+01:00"
    assert text(root, "cap:info/cap:expires") == "2025-03-29T00:41:11+01:00"
    assert "https://veilig.haarlem.nl/ack/t0k3n?a=1&b=2" in str(
        text(root, "cap:info/cap:instruction")
    )
    params = parameters(root)
    assert params["reporter.name"] == REPORTER.name
    assert params["reporter.phone"] == REPORTER.phone
    assert params["partner"] == "spaarnelijn"
    assert params["flags"] == "in_progress"
    assert params["attribute.persons_seen"] == "2"
    assert params["ack_url"] == "https://veilig.haarlem.nl/ack/t0k3n?a=1&b=2"
    assert b"gAAAAA" not in xml  # the sealed token never goes out
    area = root.find("cap:info/cap:area", NS)
    assert area is not None
    assert text(area, "cap:areaDesc") == "Kleine Houtstraat 14, Haarlem; Binnenstad (Oude Stad)"
    assert text(area, "cap:circle") == "52.379123,4.633456 0.05"
    geocodes = {
        g.findtext("cap:valueName", namespaces=NS): g.findtext("cap:value", namespaces=NS)
        for g in area.iterfind("cap:geocode", NS)
    }
    assert geocodes == {"CBS-buurtcode": "BU03920102", "CBS-wijkcode": "WK039201"}


@pytest.mark.parametrize("msg_type", ["Update", "Cancel"])
def test_update_and_cancel_validate_and_reference_the_first_alert(msg_type: Any) -> None:
    xml = alert(
        msg_type=msg_type,
        identifier="nl.haarlem.veilig.5f0c2a8e.2",
        sent=datetime(2025, 3, 28, 22, 50, tzinfo=UTC),
        references=[(SENDER, FIRST_ID, FIRST_SENT)],
        note="Prioriteit verlaagd na tweede melding",
    )
    validate_cap(xml)
    root = parse(xml)
    assert text(root, "cap:msgType") == msg_type
    assert text(root, "cap:references") == f"{SENDER},{FIRST_ID},2025-03-28T23:41:20+01:00"
    assert text(root, "cap:note") == "Prioriteit verlaagd na tweede melding"
    prefix = {"Update": "Update: ", "Cancel": "Ingetrokken: "}[msg_type]
    assert str(text(root, "cap:info/cap:headline")).startswith(prefix)


def test_several_references_are_space_separated() -> None:
    second = (
        "veilig@haarlem.nl",
        "nl.haarlem.veilig.5f0c2a8e.2",
        datetime(2025, 3, 28, 23, 0, tzinfo=UTC),
    )
    xml = alert(msg_type="Update", references=[(SENDER, FIRST_ID, FIRST_SENT), second])
    validate_cap(xml)
    refs = str(text(parse(xml), "cap:references")).split(" ")
    assert refs == [
        f"{SENDER},{FIRST_ID},2025-03-28T23:41:20+01:00",
        "veilig@haarlem.nl,nl.haarlem.veilig.5f0c2a8e.2,2025-03-29T00:00:00+01:00",
    ]


def test_references_are_required_exactly_for_update_and_cancel() -> None:
    with pytest.raises(ValueError, match="references"):
        alert(msg_type="Alert", references=[(SENDER, FIRST_ID, FIRST_SENT)])
    with pytest.raises(ValueError, match="references"):
        alert(msg_type="Update")
    with pytest.raises(ValueError, match="references"):
        alert(msg_type="Cancel", references=[])


@pytest.mark.parametrize(
    ("priority", "urgency", "severity"),
    [
        ("P1", "Immediate", "Severe"),
        ("P2", "Expected", "Moderate"),
        ("P3", "Future", "Minor"),
        ("P4", "Future", "Minor"),
    ],
)
def test_priority_mapping(priority: Priority, urgency: str, severity: str) -> None:
    assert PRIORITY_TO_CAP[priority] == (urgency, severity)
    xml = alert(incident={"priority": priority})
    validate_cap(xml)
    root = parse(xml)
    assert text(root, "cap:info/cap:urgency") == urgency
    assert text(root, "cap:info/cap:severity") == severity
    assert parameters(root)["priority"] == priority


def test_certainty_is_observed_once_independent_reports_corroborate() -> None:
    assert text(parse(alert()), "cap:info/cap:certainty") == "Likely"
    assert text(parse(alert(incident={"report_count": 2})), "cap:info/cap:certainty") == "Observed"


def test_every_taxonomy_category_maps_to_cap_categories() -> None:
    assert set(CATEGORY_TO_CAP) == set(taxonomy().category_codes)
    allowed = {
        "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
        "Infra", "CBRNE", "Other",
    }  # fmt: skip
    assert all(cats and set(cats) <= allowed for cats in CATEGORY_TO_CAP.values())


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("brand", ["Fire"]),
        ("gevaarlijke-stoffen", ["CBRNE", "Safety"]),
        ("hic.overval", ["Security"]),
        ("verward-gedrag", ["Health", "Safety"]),
        ("overig", ["Other"]),
    ],
)
def test_category_in_the_alert(category: str, expected: list[str]) -> None:
    xml = alert(incident={"category": category})
    validate_cap(xml)
    root = parse(xml)
    assert [c.text for c in root.iterfind("cap:info/cap:category", NS)] == expected
    assert text(root, "cap:info/cap:event") == taxonomy().category(category).label_nl
    code = root.find("cap:info/cap:eventCode", NS)
    assert code is not None and text(code, "cap:value") == category


def test_vpt_is_flagged_with_a_code() -> None:
    assert parse(alert()).find("cap:code", NS) is None
    vpt = parse(alert(incident={"category": "vpt", "priority": "P2"}))
    assert text(vpt, "cap:code") == "VPT"
    victim = alert(incident={"flags": {"public_task_victim": True}})
    validate_cap(victim)
    assert text(parse(victim), "cap:code") == "VPT"


def test_private_scope_names_its_addresses() -> None:
    xml = alert(addresses=["politie.meldkamer", "brandweer kennemerland"])
    validate_cap(xml)
    root = parse(xml)
    assert text(root, "cap:scope") == "Private"
    assert text(root, "cap:addresses") == 'politie.meldkamer "brandweer kennemerland"'
    assert root.find("cap:restriction", NS) is None


def test_free_text_is_escaped_and_cleaned_of_characters_xml_cannot_carry() -> None:
    xml = alert(incident={"description": "Ruit <kapot> & \x07deur open"})
    validate_cap(xml)
    assert text(parse(xml), "cap:info/cap:description") == "Ruit <kapot> & deur open"


def test_a_location_without_a_point_has_no_circle() -> None:
    xml = alert(
        incident={
            "location": {"buurt_code": "BU03920102", "wijk_code": "WK039201", "resolution": "buurt"}
        }
    )
    validate_cap(xml)
    area = parse(xml).find("cap:info/cap:area", NS)
    assert area is not None and area.find("cap:circle", NS) is None
    assert text(area, "cap:areaDesc") == "Binnenstad (Oude Stad)"


def test_a_point_outside_haarlem_says_so() -> None:
    where = {"lat": 52.37, "lon": 4.9, "resolution": "point", "inside_haarlem": False}
    reported, triaged = incident(location=where)
    triaged = triaged.model_copy(update={"buurt_code": None, "wijk_code": None})
    xml = build_cap(reported, triaged, msg_type="Alert", identifier=FIRST_ID, sent=FIRST_SENT)
    validate_cap(xml)
    area = parse(xml).find("cap:info/cap:area", NS)
    assert area is not None
    assert text(area, "cap:areaDesc") == "buiten Haarlem"
    assert text(area, "cap:circle") == "52.37,4.9 0.05"
    assert area.find("cap:geocode", NS) is None
    assert text(parse(xml), "cap:info/cap:headline") == "P1 woninginbraak"


def test_identifier_and_sender_must_be_cap_tokens() -> None:
    with pytest.raises(ValueError, match="identifier"):
        alert(identifier="a,b")
    with pytest.raises(ValueError, match="sender"):
        alert(sender="veilig haarlem")


def test_cap_datetime_uses_the_local_offset_and_whole_seconds() -> None:
    assert cap_datetime(datetime(2026, 11, 28, 22, 30, 0, 999, tzinfo=UTC)) == (
        "2026-11-28T23:30:00+01:00"
    )
    assert cap_datetime("2026-07-01T10:00:00Z") == "2026-07-01T12:00:00+02:00"
    assert CAP_TIME.fullmatch(cap_datetime(datetime.now(UTC)))
    with pytest.raises(ValueError, match="timezone-aware"):
        cap_datetime(datetime(2026, 11, 28, 22, 30))


def test_validate_cap_rejects_what_the_schema_rejects() -> None:
    good = alert()
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate_cap(good.replace(b"+01:00</sent>", b"Z</sent>"))
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate_cap(good.replace(b"<urgency>Immediate", b"<urgency>Now"))
