"""What analytics keeps of an event: codes and times, no personal data."""

from __future__ import annotations

from schemas.events import IncidentReported, IncidentResolved, Location, NotificationFailed
from schemas.examples import EXAMPLES
from services.analytics.projection import COLUMNS, HANDLED, event_kind, to_row


def test_no_text_names_or_coordinates_reach_analytics() -> None:
    reported = EXAMPLES[IncidentReported]
    resolved = EXAMPLES[IncidentResolved].model_copy(update={"actor": "j.jansen"})
    failed = EXAMPLES[NotificationFailed]
    kept = " ".join(str(v) for e in (reported, resolved, failed) for v in to_row(e))
    for personal in (
        reported.description,
        reported.reporter_sealed,
        reported.location.address,
        str(reported.location.lat),
        reported.external_id,
        resolved.note,
        "j.jansen",
        failed.error,
    ):
        assert personal and personal not in kept


def test_every_example_event_has_a_row() -> None:
    for event in (EXAMPLES[cls] for cls in HANDLED):
        row = to_row(event)
        assert row.event_id == event.event_id and row.type == event_kind(event)
        assert len(row) == len(COLUMNS)


def test_a_location_outside_haarlem_counts_as_unknown_area() -> None:
    outside = EXAMPLES[IncidentReported].model_copy(
        update={
            "location": Location(buurt_code="BU03630000", wijk_code="WK036300", resolution="buurt")
        }
    )
    row = to_row(outside)
    assert (row.wijk, row.buurt) == (None, None)
