"""The zorgsignaal rule: same spot, count, window, care-relevant categories, once per window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.triage.prevention import (
    PastSignal,
    PreventionSettings,
    Sighting,
    Spot,
    address_key,
    zorgsignaal,
)

RULE = PreventionSettings()
DOOR = Spot(52.3590, 4.6560, address_key("Kruisweg 12, Haarlem"))
T0 = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)


def seen(days: float, category: str = "woonoverlast", spot: Spot = DOOR) -> Sighting:
    return Sighting(uuid4(), T0 + timedelta(days=days), category, spot)


def test_defaults_are_three_care_relevant_reports_in_thirty_days_within_25_metres() -> None:
    assert RULE.categories == ("woonoverlast", "verward-gedrag", "jeugdoverlast")
    assert (RULE.count, RULE.days, RULE.metres) == (3, 30, 25.0)


def test_the_third_report_at_one_door_in_a_month_raises_the_signal() -> None:
    first, second, third = seen(0), seen(10, "verward-gedrag"), seen(20)
    assert zorgsignaal(second, [first], [], RULE) is None
    signal = zorgsignaal(third, [first, second], [], RULE)
    assert signal is not None
    assert [s.incident_id for s in signal.incidents] == [
        first.incident_id,
        second.incident_id,
        third.incident_id,
    ]
    assert (signal.categories, signal.matched_on) == (("woonoverlast", "verward-gedrag"), "point")


def test_a_fourth_report_in_the_window_raises_no_second_signal() -> None:
    earlier = [seen(0), seen(10), seen(20)]
    raised = PastSignal(DOOR, earlier[-1].occurred_at)
    assert zorgsignaal(seen(25), earlier, [raised], RULE) is None
    # Once the window has passed since the signal, three new reports raise the next one.
    later = [seen(55), seen(60)]
    assert zorgsignaal(seen(65), [*earlier, *later], [raised], RULE) is not None


def test_reports_outside_the_window_do_not_count() -> None:
    assert zorgsignaal(seen(40), [seen(0), seen(20)], [], RULE) is None
    assert zorgsignaal(seen(20), [seen(-10.5), seen(0)], [], RULE) is None


def test_same_spot_within_25_metres_or_same_address_text() -> None:
    near = Spot(52.3591, 4.6561, None)  # about 13 m away
    far = Spot(52.3594, 4.6560, None)  # about 44 m away
    same_address = Spot(None, None, address_key("  KRUISWEG 12 haarlem "))
    assert DOOR.matches(near, 25) == "point"
    assert DOOR.matches(far, 25) is None
    assert DOOR.matches(same_address, 25) == "address"
    signal = zorgsignaal(seen(20), [seen(0, spot=near), seen(5, spot=same_address)], [], RULE)
    assert signal is not None and signal.matched_on == "address"
    assert zorgsignaal(seen(20), [seen(0, spot=far), seen(5, spot=far)], [], RULE) is None


def test_only_care_relevant_categories_count() -> None:
    assert zorgsignaal(seen(20, "vandalisme"), [seen(0), seen(10)], [], RULE) is None
    assert zorgsignaal(seen(20), [seen(0, "vandalisme"), seen(10)], [], RULE) is None


def test_the_rule_is_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZORG_SIGNAL_CATEGORIES", "woonoverlast, drugsoverlast")
    monkeypatch.setenv("ZORG_SIGNAL_COUNT", "2")
    monkeypatch.setenv("ZORG_SIGNAL_DAYS", "7")
    rule = PreventionSettings()
    assert (rule.categories, rule.count, rule.days) == (("woonoverlast", "drugsoverlast"), 2, 7)
    assert zorgsignaal(seen(5, "drugsoverlast"), [seen(0)], [], rule) is not None
    assert zorgsignaal(seen(8, "drugsoverlast"), [seen(0)], [], rule) is None
    monkeypatch.setenv("ZORG_SIGNAL_CATEGORIES", "woonoverlast,burenruzie")
    with pytest.raises(ValidationError, match="unknown categories: burenruzie"):
        PreventionSettings()


def test_address_keys_ignore_case_punctuation_and_spacing() -> None:
    assert address_key("Kruisweg 12-A,  Haarlem") == "kruisweg 12 a haarlem"
    assert address_key(" , ") is None and address_key(None) is None
