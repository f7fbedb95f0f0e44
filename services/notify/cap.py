"""OASIS CAP 1.2 alerts for police and fire brigade (DOMAIN.md "Standards the platform speaks").

The first message about an incident to a recipient is an ``Alert``; later ones are ``Update``
or ``Cancel`` and reference the first alert. The content comes from
:func:`services.notify.messages.disclose` with the ``full`` profile (CAP recipients are police
and fire brigade), so CAP shows nothing the profile does not allow.

Mapping decisions (the tables below are the contract with the control rooms):

- **urgency and severity from priority.** P1 means "life or property at risk now" with a
  2-minute acknowledge deadline: Immediate / Severe. P2 (acknowledge within 15 minutes, handle
  within 8 hours) is Expected ("within the next hour") / Moderate ("possible threat"). P3 and P4
  are handled this shift or later: Future / Minor. Extreme ("extraordinary threat") is never
  set automatically: one report cannot establish it, a control room raises it.
- **certainty from corroboration, not priority.** A single report is an unconfirmed witness
  statement: Likely. Two or more independent reports of the same incident: Observed.
- **category** per taxonomy category (:data:`CATEGORY_TO_CAP`); a category added to the
  taxonomy later and not yet mapped is sent as Other rather than not at all.

Times are Europe/Amsterdam with their offset and no fractions (2026-11-28T23:30:00+01:00);
CAP forbids "-00:00" and the schema's pattern forbids "Z".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any, Literal
from xml.etree import ElementTree as ET

import xmlschema

from schemas.events import IncidentReported, IncidentTriaged
from schemas.taxonomy import Priority, Profile, taxonomy
from schemas.timeutil import AMSTERDAM
from services.notify.messages import Kind, area, disclose, headline, place

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
CAP_XSD = files("schemas") / "data" / "CAP-v1.2.xsd"
SENDER = "veilig@haarlem.nl"
SENDER_NAME = "Veilig Haarlem, gemeente Haarlem"
RESTRICTION = (
    "Vertrouwelijk: alleen voor hulpdiensten die Veilig Haarlem informeert; "
    "bevat persoonsgegevens (AVG)."
)
# A reported point is a spot on a street, not a surveyed position: about a building's width.
POINT_RADIUS_KM = 0.05

MsgType = Literal["Alert", "Update", "Cancel"]
Reference = tuple[str, str, datetime]
"""(sender, identifier, sent) of an earlier alert."""

PRIORITY_TO_CAP: dict[Priority, tuple[str, str]] = {
    "P1": ("Immediate", "Severe"),
    "P2": ("Expected", "Moderate"),
    "P3": ("Future", "Minor"),
    "P4": ("Future", "Minor"),
}
"""priority -> (urgency, severity)."""

CATEGORY_TO_CAP: dict[str, tuple[str, ...]] = {
    "hic.woninginbraak": ("Security",),
    "hic.overval": ("Security",),
    "hic.straatroof": ("Security",),
    "hic.geweld": ("Security",),
    "brand": ("Fire",),
    # Hazardous materials are the C of CBRNE; Safety so that a general-hazard filter sees it.
    "gevaarlijke-stoffen": ("CBRNE", "Safety"),
    "vpt": ("Security",),
    "uitgaansoverlast": ("Security",),
    "jeugdoverlast": ("Security",),
    "jeugdcriminaliteit": ("Security",),
    # E33: a care matter first, public safety when there is danger.
    "verward-gedrag": ("Health", "Safety"),
    "drugsoverlast": ("Security",),
    "woonoverlast": ("Safety",),
    "vandalisme": ("Security",),
    "verdachte-situatie": ("Security",),
    "privacy.datalek": ("Other",),
    "overig": ("Other",),
}
"""taxonomy category -> CAP categories."""

_KIND: dict[MsgType, Kind] = {"Alert": "alert", "Update": "update", "Cancel": "cancel"}
# CAP 1.2: identifier and sender hold no spaces, commas or restricted characters (< and &).
_CAP_TOKEN = re.compile(r"[^\s,<&]+")
# Characters XML 1.0 cannot carry at all; free text from a partner may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def cap_datetime(dt: datetime | str) -> str:
    """A CAP date-time: Europe/Amsterdam offset, whole seconds."""
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    if dt.utcoffset() is None:
        raise ValueError(f"a CAP time must be timezone-aware, got {dt.isoformat()}")
    return dt.astimezone(AMSTERDAM).isoformat(timespec="seconds")


def _token(value: str, what: str) -> str:
    if not _CAP_TOKEN.fullmatch(value):
        raise ValueError(f"CAP {what} {value!r} must not contain spaces, commas, '<' or '&'")
    return value


def _add(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NAMESPACE}}}{name}")
    if text is not None:
        element.text = _NOT_XML.sub("", text)
    return element


def _add_pair(parent: ET.Element, name: str, value_name: str, value: str) -> None:
    pair = _add(parent, name)
    _add(pair, "valueName", value_name)
    _add(pair, "value", value)


def _parameters(
    report: dict[str, Any], triage: dict[str, Any], ack_url: str | None
) -> dict[str, str]:
    """Machine-readable details, named like the JSON payload's fields."""
    flags = report["flags"]
    params = {
        "priority": triage["priority"],
        "acknowledge_by": cap_datetime(triage["acknowledge_by"]),
        "report_count": str(triage["report_count"]),
        "incident_id": triage["incident_id"],
        "partner": report["partner"],
        "external_id": report["external_id"],
        "flags": ",".join(name for name, value in flags.items() if value is True),
    }
    if flags.get("victim_role"):
        params["victim_role"] = flags["victim_role"]
    if ack_url is not None:
        params["ack_url"] = ack_url
    for field, value in (report.get("reporter") or {}).items():
        if value is not None:
            params[f"reporter.{field}"] = value
    for key, value in report["attributes"].items():
        params[f"attribute.{key}"] = value if isinstance(value, str) else json.dumps(value)
    return {name: value for name, value in params.items() if value}


def build_cap(
    reported: IncidentReported,
    triaged: IncidentTriaged,
    *,
    msg_type: MsgType,
    identifier: str,
    sent: datetime,
    references: Sequence[Reference] | None = None,
    ack_url: str | None = None,
    sender: str = SENDER,
    addresses: Sequence[str] | None = None,
    note: str | None = None,
) -> bytes:
    """A CAP 1.2 alert (UTF-8 XML) about an incident, for a full-profile recipient.

    ``references`` name the first alert (and any later ones) and are required for an Update or
    Cancel, forbidden for an Alert. With ``addresses`` the scope is Private to them, otherwise
    Restricted. ``note`` says why an Update or Cancel was sent.
    """
    if (msg_type == "Alert") == bool(references):
        raise ValueError("an Alert has no references; an Update or Cancel references the alert")
    report, triage = disclose(reported, triaged, Profile.FULL)
    category = taxonomy().category(triage["category"])
    urgency, severity = PRIORITY_TO_CAP[triage["priority"]]

    alert = ET.Element(f"{{{CAP_NAMESPACE}}}alert")
    _add(alert, "identifier", _token(identifier, "identifier"))
    _add(alert, "sender", _token(sender, "sender"))
    _add(alert, "sent", cap_datetime(sent))
    _add(alert, "status", "Actual")
    _add(alert, "msgType", msg_type)
    if addresses:
        _add(alert, "scope", "Private")
        _add(alert, "addresses", " ".join(f'"{a}"' if " " in a else a for a in addresses))
    else:
        _add(alert, "scope", "Restricted")
        _add(alert, "restriction", RESTRICTION)
    if category.vpt or report["flags"]["public_task_victim"]:
        # The national ELA agreements: aggression against a public-task worker is flagged.
        _add(alert, "code", "VPT")
    if note is not None:
        _add(alert, "note", note)
    if references:
        _add(
            alert,
            "references",
            " ".join(
                f"{_token(s, 'sender')},{_token(i, 'identifier')},{cap_datetime(t)}"
                for s, i, t in references
            ),
        )
    _add(alert, "incidents", triage["incident_id"])

    info = _add(alert, "info")
    _add(info, "language", "nl-NL")
    for cap_category in CATEGORY_TO_CAP.get(category.code, ("Other",)):
        _add(info, "category", cap_category)
    _add(info, "event", category.label_nl)
    _add(info, "urgency", urgency)
    _add(info, "severity", severity)
    _add(info, "certainty", "Observed" if triage["report_count"] >= 2 else "Likely")
    _add_pair(info, "eventCode", "veilig-haarlem-categorie", category.code)
    _add(info, "onset", cap_datetime(report["occurred_at"]))
    _add(info, "expires", cap_datetime(triage["handle_by"]))
    _add(info, "senderName", SENDER_NAME)
    where = area(triage.get("buurt_code"), triage.get("wijk_code"))
    _add(info, "headline", headline(_KIND[msg_type], triage["priority"], category.label_nl, where))
    if report["description"]:
        _add(info, "description", report["description"])
    if ack_url is not None:
        _add(
            info,
            "instruction",
            f"Bevestig ontvangst vóór {cap_datetime(triage['acknowledge_by'])} via {ack_url}",
        )
    for name, value in _parameters(report, triage, ack_url).items():
        _add_pair(info, "parameter", name, value)

    location = report["location"]
    zone = _add(info, "area")
    described = "; ".join(p for p in (location["address"], place(where)) if p)
    outside = location["inside_haarlem"] is False
    _add(zone, "areaDesc", described or ("buiten Haarlem" if outside else "locatie onbekend"))
    if location["lat"] is not None:
        _add(zone, "circle", f"{location['lat']},{location['lon']} {POINT_RADIUS_KM}")
    if where and where["buurt_code"]:
        _add_pair(zone, "geocode", "CBS-buurtcode", where["buurt_code"])
    if where and where["wijk_code"]:
        _add_pair(zone, "geocode", "CBS-wijkcode", where["wijk_code"])

    return ET.tostring(
        alert, encoding="utf-8", xml_declaration=True, default_namespace=CAP_NAMESPACE
    )


@cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(CAP_XSD))


def validate_cap(xml: bytes) -> None:
    """Check a CAP message against the OASIS CAP 1.2 schema.

    Raises :class:`xmlschema.XMLSchemaValidationError` (a ValueError) naming the first problem.
    """
    _schema().validate(xml)
