"""The notification payload per disclosure profile (DOMAIN.md "Disclosure profiles").

Also the incident fixtures of the other notify tests (``incident``)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.fernet import Fernet

from schemas.events import IncidentReported, IncidentTriaged, Reporter
from schemas.examples import EXAMPLES
from schemas.taxonomy import Profile, taxonomy
from services.common.pii import seal
from services.notify.messages import area, build_payload, disclose, encode_payload, place

NAME, PHONE, EMAIL = "Johanna Zwanenburg", "+31 6 12345678", "j.zwanenburg@example.org"
REPORTER = Reporter(name=NAME, phone=PHONE, email=EMAIL)
DESCRIPTION = "Buurman Kees Verhoeven ziet twee mannen inbreken via de achterdeur."
ADDRESS = "Kleine Houtstraat 14, Haarlem"
LAT, LON = 52.379123, 4.633456  # in Binnenstad (BU03920102), wijk Oude Stad
PARTNER = "spaarnelijn"
EXTERNAL_ID = "SL-2025-99881"
VICTIM_ROLE = "buschauffeur lijn 3"
REASON = "term 'achterdeur' + 'inbreken' -> hic.woninginbraak"
MESSAGE = UUID("3b7e2c1d-5a4f-4e8b-9c0d-112233445566")


def incident(
    *,
    category: str = "hic.woninginbraak",
    priority: str = "P1",
    report_count: int = 1,
    **report: Any,
) -> tuple[IncidentReported, IncidentTriaged]:
    """The example incident of schemas.examples with recognisable personal data, sealed as
    intake seals it; ``report`` overrides fields of the report."""
    reported = IncidentReported.model_validate(
        {
            **EXAMPLES[IncidentReported].model_dump(),
            "partner": PARTNER,
            "external_id": EXTERNAL_ID,
            "description": DESCRIPTION,
            "location": {
                "lat": LAT,
                "lon": LON,
                "address": ADDRESS,
                "buurt_code": "BU03920102",
                "wijk_code": "WK039201",
                "resolution": "point",
                "inside_haarlem": True,
            },
            "flags": {"in_progress": True, "public_task_victim": False, "victim_role": VICTIM_ROLE},
            "reporter_sealed": seal(REPORTER.model_dump_json(exclude_none=True)),
            "attributes": {"kenteken": "12-ABC-3", "persons_seen": 2},
            **report,
        }
    )
    triaged = IncidentTriaged.model_validate(
        {
            **EXAMPLES[IncidentTriaged].model_dump(),
            "category": category,
            "priority": priority,
            "report_count": report_count,
            "reasons": (REASON,),
        }
    )
    return reported, triaged


def payload(profile: Profile, **kwargs: Any) -> dict[str, Any]:
    reported, triaged = incident()
    return build_payload(
        reported, triaged, profile, message_id=MESSAGE, kind=kwargs.pop("kind", "alert"), **kwargs
    )


# Every value a coarse recipient must not see, in the forms it could take in JSON.
SECRETS = [
    DESCRIPTION,
    "Verhoeven",
    ADDRESS,
    "Kleine Houtstraat",
    str(LAT),
    str(LON),
    f"{LAT:.3f}",
    f"{LON:.3f}",
    NAME,
    "Zwanenburg",
    PHONE,
    "12345678",
    EMAIL,
    PARTNER,
    EXTERNAL_ID,
    VICTIM_ROLE,
    "12-ABC-3",
    "achterdeur",
    "gAAAAA",  # any Fernet token: the sealed reporter
]


def test_coarse_payload_leaks_no_free_text_location_reporter_or_partner() -> None:
    coarse = payload(Profile.COARSE, kind="update", update_reason="Kees belde opnieuw")
    serialised = encode_payload(coarse).decode()
    # The check means something: the full message does hold them (the sealed token aside).
    full = encode_payload(payload(Profile.FULL, kind="update", update_reason="Kees belde opnieuw"))
    assert all(secret in full.decode() for secret in SECRETS if secret != "gAAAAA")
    for secret in [*SECRETS, "Kees belde opnieuw"]:
        assert secret not in serialised, secret
    assert set(coarse["report"]["location"]) == {
        "buurt_code",
        "wijk_code",
        "resolution",
        "inside_haarlem",
    }
    assert "update_reason" not in coarse
    assert "reasons" not in coarse["triage"] and "recipients" not in coarse["triage"]


def test_coarse_payload_has_category_priority_buurt_and_quarter_hour_times() -> None:
    coarse = payload(Profile.COARSE)
    assert coarse["category"] == {"code": "hic.woninginbraak", "label": "woninginbraak"}
    assert coarse["priority"] == "P1"
    assert coarse["area"] == {
        "buurt_code": "BU03920102",
        "buurt_name": "Binnenstad",
        "wijk_code": "WK039201",
        "wijk_name": "Oude Stad",
    }
    # The example happened at 22:38:05Z and was triaged at 22:41:11Z.
    assert coarse["report"]["occurred_at"] == "2025-03-28T22:30:00Z"
    assert coarse["deadlines"] == {
        "acknowledge_by": "2025-03-28T22:30:00Z",
        "handle_by": "2025-03-28T23:30:00Z",
    }
    assert coarse["profile"] == "coarse"


def test_operational_payload_has_text_and_exact_location_but_no_reporter() -> None:
    operational = payload(Profile.OPERATIONAL, kind="update", update_reason="prioriteit omhoog")
    report = operational["report"]
    assert report["description"] == DESCRIPTION
    assert (report["location"]["lat"], report["location"]["lon"]) == (LAT, LON)
    assert report["location"]["address"] == ADDRESS
    assert report["occurred_at"] == "2025-03-28T22:38:05Z"
    assert operational["update_reason"] == "prioriteit omhoog"
    assert "reporter" not in report and "reporter_sealed" not in report
    serialised = encode_payload(operational).decode()
    for secret in (NAME, PHONE, EMAIL, "gAAAAA"):
        assert secret not in serialised


def test_full_payload_has_the_reporter_opened_and_never_the_sealed_token() -> None:
    reported, triaged = incident()
    full = build_payload(
        reported,
        triaged,
        Profile.FULL,
        message_id=MESSAGE,
        kind="alert",
        ack_url="https://veilig.haarlem.nl/ack/t0k3n",
    )
    assert full["report"]["reporter"] == REPORTER.model_dump(mode="json")
    assert "reporter_sealed" not in full["report"]
    assert str(reported.reporter_sealed) not in encode_payload(full).decode()
    assert full["report"]["description"] == DESCRIPTION
    assert full["triage"]["reasons"] == [REASON]
    assert full["ack_url"] == "https://veilig.haarlem.nl/ack/t0k3n"
    assert full["deadlines"] == {
        "acknowledge_by": "2025-03-28T22:43:11Z",
        "handle_by": "2025-03-28T23:41:11Z",
    }


def test_message_metadata() -> None:
    reported, triaged = incident(category="verward-gedrag", priority="P2")
    message = uuid4()
    out = build_payload(
        reported, triaged, "operational", message_id=message, kind="cancel", update_reason=None
    )
    assert out["version"] == 1
    assert out["message_id"] == str(message)
    assert out["incident_id"] == str(reported.incident_id)
    assert out["kind"] == "cancel"
    assert out["category"] == {"code": "verward-gedrag", "label": "verward gedrag (E33)"}
    assert out["priority"] == "P2"
    assert "update_reason" not in out and "ack_url" not in out


@pytest.mark.parametrize("kind", taxonomy().recipients, ids=lambda k: k.code)
def test_every_recipient_gets_its_profile(kind: Any) -> None:
    out = payload(kind.profile)
    assert out["profile"] == kind.profile.value
    assert ("description" in out["report"]) is kind.profile.may_see(Profile.OPERATIONAL)
    assert ("reporter" in out["report"]) is (kind.profile is Profile.FULL)


def test_a_retry_has_the_same_bytes() -> None:
    assert encode_payload(payload(Profile.FULL)) == encode_payload(payload(Profile.FULL))


def test_a_shredded_reporter_key_still_sends_the_alert_without_the_reporter() -> None:
    # Sealed with a key the platform no longer has: what crypto-shredding leaves behind.
    gone = Fernet(Fernet.generate_key()).encrypt(b'{"name": "X"}').decode()
    reported, triaged = incident(reporter_sealed=gone)
    report, _ = disclose(reported, triaged, Profile.FULL)
    assert report["reporter"] is None
    assert "reporter_sealed" not in report


def test_report_and_triage_must_be_of_one_incident() -> None:
    reported, triaged = incident()
    other = triaged.model_copy(update={"incident_id": uuid4()})
    with pytest.raises(ValueError, match="different incidents"):
        build_payload(reported, other, Profile.FULL, message_id=MESSAGE, kind="alert")


def test_area_outside_haarlem_keeps_codes_without_names() -> None:
    assert area("BU03630000", "WK036300") == {
        "buurt_code": "BU03630000",
        "buurt_name": None,
        "wijk_code": "WK036300",
        "wijk_name": None,
    }
    assert area(None, None) is None
    assert place(area("BU03630000", "WK036300")) == "BU03630000"
    assert place(area("BU03920102", "WK039201")) == "Binnenstad (Oude Stad)"


def test_payload_is_plain_json() -> None:
    out = payload(Profile.FULL)
    assert json.loads(encode_payload(out)) == out
