"""What of a report is personal, and the report without it (docs/decisions/0010).

The reporter's contact, the description (free text may name people) and the exact location
(point and address: a door) are personal; category hint, buurt and wijk, times, flags and
partner stay, so analytics keeps counting the incident. Every copy of a report is erased
with :func:`erase_report`: no service keeps a field list of its own.
"""

from __future__ import annotations

from typing import Any

from schemas.events import IncidentReported

PERSONAL_FIELDS = ("description", "location", "flags", "attributes", "reporter_sealed")
"""The fields of a report with something personal in them: on Kafka their whole value travels
sealed (services/common/period_keys.py), beside what :func:`erased` leaves of them."""


def erased(data: dict[str, Any]) -> dict[str, Any]:
    """The fields of a report (``model_dump()``) without its personal data."""
    where = data["location"]
    # A point without coordinates is not a point any more: what is left is the buurt.
    resolution = where["resolution"]
    if resolution == "point":
        resolution = "buurt" if where["buurt_code"] else "none"
    return {
        **data,
        "description": "",
        "reporter_sealed": None,
        "reporter": None,
        "attributes": {},
        "location": {**where, "lat": None, "lon": None, "address": None, "resolution": resolution},
        "flags": {**data["flags"], "victim_role": None},
    }


def erase_report(report: IncidentReported) -> IncidentReported:
    """``report`` without its personal data; erasing twice changes nothing."""
    return IncidentReported.model_validate(erased(report.model_dump()))
