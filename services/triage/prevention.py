"""Prevention signals (zorgsignaal): care-relevant reports that keep coming back to one spot.

The programme: people in trouble who cause nuisance must not slide into crime. When
neighbour nuisance, a confused person or youth nuisance is reported again and again at one
spot (``ZORG_SIGNAL_COUNT`` incidents of ``ZORG_SIGNAL_CATEGORIES`` within
``ZORG_SIGNAL_DAYS``, at points within ``ZORG_SIGNAL_METRES`` or with the same address
text), the care partner hears of it once: one signal per spot and window, so the fourth
report at a door that raised a signal raises no second one.

Pure: the rule, what counts as the same spot, and the decision over the incidents and the
signals found (``signals`` loads them and acts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.taxonomy import taxonomy
from services.common.settings import comma_separated
from services.triage.decide import metres_between

ADDRESS_NOISE = "[^a-z0-9]+"
"""What an address key drops (as a space): case, punctuation and spacing differ per reporter.
The same pattern is used in SQL (``signals``)."""
_NOISE = re.compile(ADDRESS_NOISE)
Match = Literal["point", "address"]


class PreventionSettings(BaseSettings):
    """The zorgsignaal rule, from ``ZORG_SIGNAL_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="ZORG_SIGNAL_", env_file=None, extra="ignore", frozen=True
    )

    categories: Annotated[tuple[str, ...], NoDecode, BeforeValidator(comma_separated)] = Field(
        ("woonoverlast", "verward-gedrag", "jeugdoverlast"),
        description="Comma-separated care-relevant categories whose reports are counted.",
    )
    count: int = Field(3, ge=2, description="Incidents at one spot that raise a signal.")
    days: int = Field(30, ge=1, description="The window they must fall in, in days.")
    metres: float = Field(25.0, gt=0, description="Points this close are the same spot.")

    @field_validator("categories")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(taxonomy().category_codes))
        if unknown:
            raise ValueError(f"unknown categories: {', '.join(unknown)}")
        if not value:
            raise ValueError("give at least one category")
        return value

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.days)


def address_key(text: str | None) -> str | None:
    """An address as a comparable key: "Kruisweg 12, Haarlem" == "kruisweg 12 haarlem"."""
    key = _NOISE.sub(" ", (text or "").lower()).strip()
    return key or None


@dataclass(frozen=True, slots=True)
class Spot:
    lat: float | None
    lon: float | None
    address: str | None
    """An address key (:func:`address_key`)."""

    def matches(self, other: Spot, metres: float) -> Match | None:
        if (
            self.lat is not None
            and self.lon is not None
            and other.lat is not None
            and other.lon is not None
            and metres_between(self.lat, self.lon, other.lat, other.lon) <= metres
        ):
            return "point"
        if self.address is not None and self.address == other.address:
            return "address"
        return None


@dataclass(frozen=True, slots=True)
class Sighting:
    """A care-relevant incident at a spot."""

    incident_id: UUID
    occurred_at: datetime
    category: str
    spot: Spot


@dataclass(frozen=True, slots=True)
class PastSignal:
    spot: Spot
    last_occurred_at: datetime
    """When the newest incident it counted happened: its window runs on from there."""


@dataclass(frozen=True, slots=True)
class Signal:
    incidents: tuple[Sighting, ...]
    """Oldest first; the new incident last."""
    categories: tuple[str, ...]
    matched_on: Match


def zorgsignaal(
    new: Sighting,
    others: Sequence[Sighting],
    signals: Sequence[PastSignal],
    rule: PreventionSettings,
) -> Signal | None:
    """The signal ``new`` raises, if it makes the count at its spot and no signal of the same
    spot covers its window yet; ``others`` and ``signals`` may hold more than the spot's."""
    if new.category not in rule.categories:
        return None
    since = new.occurred_at - rule.window
    matched: list[tuple[Sighting, Match]] = []
    for other in others:
        how = new.spot.matches(other.spot, rule.metres)
        if (
            how is not None
            and other.incident_id != new.incident_id
            and other.category in rule.categories
            and since < other.occurred_at <= new.occurred_at
        ):
            matched.append((other, how))
    if len(matched) + 1 < rule.count:
        return None
    if any(new.spot.matches(s.spot, rule.metres) and s.last_occurred_at > since for s in signals):
        return None  # this spot's signal for the window is out already
    incidents = (*sorted((m for m, _ in matched), key=lambda s: s.occurred_at), new)
    categories = tuple(dict.fromkeys(s.category for s in incidents))
    how_matched: Match = "point" if all(how == "point" for _, how in matched) else "address"
    return Signal(incidents, categories, how_matched)
