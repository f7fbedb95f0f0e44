"""The nightly summary for horeca.khn: which night, which street, what the message holds."""

from __future__ import annotations

from datetime import UTC, date, datetime

from schemas.timeutil import AMSTERDAM
from services.notify.nightlife import last_night, night_bounds, street_of, summary


def test_the_street_is_the_words_before_the_house_number_else_the_buurt() -> None:
    assert street_of("Grote Markt 13", None) == "Grote Markt"
    assert street_of("  grote   markt 2, Haarlem", None) == "Grote Markt"
    assert street_of("Sint-Jansstraat 4a", None) == "Sint-Jansstraat"
    assert street_of("achter de snackbar van Kevin", "BU03920101") == "buurt Stationsbuurt"
    assert street_of(None, None) == "onbekend"


def test_the_summary_of_the_last_nightlife_night_once_it_has_settled() -> None:
    # Tuesday 1 December 2026: the last nightlife night started on Saturday 28 November.
    assert last_night(datetime(2026, 12, 1, 9, 0, tzinfo=AMSTERDAM)) == date(2026, 11, 28)
    # Sunday 29 November 05:30: Saturday's night is over but not settled (an hour): Friday's.
    assert last_night(datetime(2026, 11, 29, 5, 30, tzinfo=AMSTERDAM)) == date(2026, 11, 27)
    assert last_night(datetime(2026, 11, 29, 6, 0, tzinfo=AMSTERDAM)) == date(2026, 11, 28)
    start, end = night_bounds(date(2026, 11, 28))
    assert (start, end) == (
        datetime(2026, 11, 28, 21, 0, tzinfo=UTC),
        datetime(2026, 11, 29, 4, 0, tzinfo=UTC),
    )


def test_counts_per_street_and_local_hour_in_the_nights_order() -> None:
    def at(day: int, hour: int) -> datetime:
        return datetime(2026, 11, day, hour, 10, tzinfo=AMSTERDAM)

    found = summary(
        date(2026, 11, 28),
        [(at(29, 1), "Grote Markt"), (at(28, 23), "Grote Markt"), (at(28, 23), "Grote Markt")],
    )
    assert found["total"] == 3
    assert found["counts"] == [
        {"street": "Grote Markt", "hour": "23:00", "count": 2},
        {"street": "Grote Markt", "hour": "01:00", "count": 1},
    ]
