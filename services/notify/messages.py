"""The content of a notification for one recipient, cut to its disclosure profile.

There is one mechanism: :func:`disclose` runs both incident events through
:func:`schemas.disclosure.minimise`, so the field marks of the contract decide what a profile
sees (coarse: no free text, no exact location, no reporter or partner, times rounded down to the
quarter hour). Everything else in a payload is derived from what survived that step, never from
the events themselves, so a channel cannot leak a field by reading it directly. The JSON payload
(:func:`build_payload`), the CAP alert (:mod:`services.notify.cap`) and the e-mail
(:mod:`services.notify.mail`) all start here.

The reporter's contact details travel sealed; only a ``full`` recipient's message gets them,
opened here. The sealed token itself never leaves, whatever the profile.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal
from uuid import UUID

from schemas import geo
from schemas.disclosure import minimise, required_profile
from schemas.events import IncidentPriorityChanged, IncidentReported, IncidentTriaged, Reporter
from schemas.taxonomy import Profile, taxonomy
from services.common.pii import SealError, open_sealed

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
"""Version of the payload's shape; partners read it before anything else."""
JSON_MEDIA_TYPE = "application/json"

Kind = Literal["alert", "update", "cancel"]
"""alert: the first message about an incident to a recipient; update: something changed;
cancel: the recipient no longer needs to act (merged, unfounded, cancelled)."""

# An update reason is free text written by staff, like the `reason` of the contract's events:
# it gets the same mark, taken from the contract rather than restated here.
_REASON_PROFILE = required_profile(IncidentPriorityChanged.model_fields["reason"])
_DEADLINES = ("acknowledge_by", "handle_by")
_KIND_PREFIX: dict[Kind, str] = {"alert": "", "update": "Update: ", "cancel": "Ingetrokken: "}


def open_reporter(reported: IncidentReported) -> Reporter | None:
    """The reporter's contact details in the clear, for a full-profile message only.

    A key that was dropped after the retention period makes the token unreadable by design
    (crypto-shredding): the message then goes out without a reporter rather than not at all.
    """
    if reported.reporter is not None or reported.reporter_sealed is None:
        return reported.reporter
    try:
        reporter = Reporter.model_validate_json(open_sealed(reported.reporter_sealed))
    except SealError:
        log.warning(
            "reporter contact cannot be opened", extra={"incident_id": str(reported.incident_id)}
        )
        return None
    # Every read of personal data is audited (DOMAIN.md); ids only, never the contents.
    log.info(
        "reporter contact opened for a full-profile notification",
        extra={"incident_id": str(reported.incident_id), "audit": "pii.read"},
    )
    return reporter


def disclose(
    reported: IncidentReported, triaged: IncidentTriaged, profile: Profile | str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report and the triage of one incident as ``profile`` may see them (JSON-ready)."""
    if reported.incident_id != triaged.incident_id:
        raise ValueError(
            f"report {reported.incident_id} and triage {triaged.incident_id} are of different "
            "incidents"
        )
    profile = Profile(profile)
    update: dict[str, Any] = {"reporter_sealed": None}
    if profile is Profile.FULL:
        update["reporter"] = open_reporter(reported)
    report = minimise(reported.model_copy(update=update), profile)
    report.pop("reporter_sealed", None)
    return report, minimise(triaged, profile)


def area(buurt_code: str | None, wijk_code: str | None) -> dict[str, str | None] | None:
    """Codes and names of the incident's buurt and wijk; names are None outside Haarlem."""
    if buurt_code is None and wijk_code is None:
        return None
    try:
        buurt_name: str | None = geo.buurt(buurt_code).name if buurt_code else None
    except KeyError:
        buurt_name = None
    wijk_name = geo.wijk_names().get(wijk_code) if wijk_code else None
    return {
        "buurt_code": buurt_code,
        "buurt_name": buurt_name,
        "wijk_code": wijk_code,
        "wijk_name": wijk_name,
    }


def place(where: dict[str, str | None] | None) -> str | None:
    """A human name for an :func:`area`: "Binnenstad (Oude Stad)", else the best code known."""
    if where is None:
        return None
    if where["buurt_name"]:
        return f"{where['buurt_name']} ({where['wijk_name']})"
    return where["wijk_name"] or where["buurt_code"] or where["wijk_code"]


def headline(kind: Kind, priority: str, label: str, where: dict[str, str | None] | None) -> str:
    """The subject line on every channel: ``Update: P1 woninginbraak, Binnenstad (Oude Stad)``."""
    named = place(where)
    return f"{_KIND_PREFIX[kind]}{priority} {label}" + (f", {named}" if named else "")


def build_payload(
    reported: IncidentReported,
    triaged: IncidentTriaged,
    profile: Profile | str,
    *,
    message_id: UUID,
    kind: Kind,
    update_reason: str | None = None,
    ack_url: str | None = None,
) -> dict[str, Any]:
    """The JSON-ready notification for one recipient with ``profile``.

    ``message_id`` identifies the notification (one per incident, recipient and update) and
    is the same on every attempt; the payload holds no send time, so a retry's body is
    byte-for-byte the first one's.
    """
    profile = Profile(profile)
    report, triage = disclose(reported, triaged, profile)
    category = triage["category"]
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "message_id": str(message_id),
        "incident_id": triage["incident_id"],
        "kind": kind,
        "profile": profile.value,
        "category": {"code": category, "label": taxonomy().category(category).label_nl},
        "priority": triage["priority"],
        "area": area(triage.get("buurt_code"), triage.get("wijk_code")),
        "deadlines": {name: triage[name] for name in _DEADLINES if name in triage},
        "report": report,
        "triage": triage,
    }
    if update_reason is not None and profile.may_see(_REASON_PROFILE):
        payload["update_reason"] = update_reason
    if ack_url is not None:
        payload["ack_url"] = ack_url
    return payload


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The payload as a webhook body: compact UTF-8 JSON, the same bytes on every attempt."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
