"""What of a report is personal: erased, while what analytics counts stays."""

from __future__ import annotations

from schemas.erasure import erase_report
from schemas.events import IncidentReported
from schemas.examples import EXAMPLES
from services.common.pii import seal

REPORT = EXAMPLES[IncidentReported].model_copy(
    update={"reporter_sealed": seal('{"name":"Anna de Vries","phone":"06-12345678"}')}
)


def test_a_report_loses_its_contact_text_and_exact_location() -> None:
    assert REPORT.location.lat is not None and REPORT.location.address is not None
    erased = erase_report(REPORT)
    assert erased.description == ""
    assert erased.reporter_sealed is None and erased.reporter is None
    assert (erased.location.lat, erased.location.lon, erased.location.address) == (None,) * 3
    assert erased.attributes == {} and erased.flags.victim_role is None


def test_what_analytics_counts_stays() -> None:
    erased = erase_report(REPORT)
    kept = ("incident_id", "occurred_at", "recorded_at", "partner", "category_hint", "channel")
    assert all(getattr(erased, name) == getattr(REPORT, name) for name in kept)
    assert erased.location.buurt_code == REPORT.location.buurt_code
    assert erased.location.wijk_code == REPORT.location.wijk_code
    assert erased.flags.in_progress == REPORT.flags.in_progress
    # Without coordinates the location is known by its buurt.
    assert erased.location.resolution == "buurt"


def test_a_point_outside_any_buurt_resolves_to_nothing() -> None:
    outside = REPORT.model_copy(
        update={
            "location": REPORT.location.model_copy(update={"buurt_code": None, "wijk_code": None})
        }
    )
    assert erase_report(outside).location.resolution == "none"


def test_erasing_twice_changes_nothing() -> None:
    once = erase_report(REPORT)
    assert erase_report(once) == once
