"""Haarlem's buurten and wijken (CBS 2024): resolve a report's location to buurt and wijk.

The buurt polygons are loaded once per process into a shapely STRtree. A point resolves to the
buurt whose polygon holds it; the wijk always comes from the buurt's ``wijk_code``, never from
the wijk polygons, which are generalised independently and disagree near edges (see
``data/README.md``). "Inside Haarlem" means inside the union of the buurten, which tile the
municipality without gaps, so a point outside every buurt is outside Haarlem; it is flagged,
not dropped. Address text is kept but not geocoded: no guessing.

Boundaries: Kadaster / Centraal Bureau voor de Statistiek, 2024 (via cartomap/nl).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.strtree import STRtree

from schemas.events import Location

DATA = Path(__file__).parent / "data"
_BUURT_CODE = re.compile(r"BU\d{8}")


@dataclass(frozen=True, slots=True)
class Buurt:
    code: str
    name: str
    wijk_code: str
    wijk_name: str


@dataclass(frozen=True, slots=True)
class _Atlas:
    buurten: tuple[Buurt, ...]
    by_code: dict[str, Buurt]
    wijken: Mapping[str, str]
    tree: STRtree
    bounds: tuple[float, float, float, float]


def geojson_features(name: str) -> list[dict[str, Any]]:
    """The features of one of the project's GeoJSON files (``data/``)."""
    with (DATA / name).open(encoding="utf-8") as f:
        return json.load(f)["features"]


@cache
def _atlas() -> _Atlas:
    wijk_names = {
        f["properties"]["code"]: f["properties"]["name"]
        for f in geojson_features("haarlem_wijken_2024.geojson")
    }
    # Source order is ascending by code; a point on a shared edge resolves to the lowest code.
    features = sorted(
        geojson_features("haarlem_buurten_2024.geojson"), key=lambda f: f["properties"]["code"]
    )
    buurten = tuple(
        Buurt(
            code=p["code"],
            name=p["name"],
            wijk_code=p["wijk_code"],
            wijk_name=wijk_names[p["wijk_code"]],
        )
        for p in (f["properties"] for f in features)
    )
    polygons = [shape(f["geometry"]) for f in features]
    tree = STRtree(polygons)
    return _Atlas(
        buurten=buurten,
        by_code={b.code: b for b in buurten},
        wijken=MappingProxyType(dict(sorted(wijk_names.items()))),
        tree=tree,
        bounds=tuple(shapely.total_bounds(polygons)),
    )


def buurten() -> tuple[Buurt, ...]:
    """All 111 buurten of Haarlem, ascending by code."""
    return _atlas().buurten


def buurt(code: str) -> Buurt:
    """A Haarlem buurt by code; KeyError for a code that is not a Haarlem buurt."""
    try:
        return _atlas().by_code[code]
    except KeyError:
        raise KeyError(f"{code!r} is not a buurt of Haarlem") from None


def wijk_names() -> Mapping[str, str]:
    """Haarlem's wijken, name by code, ascending by code (read-only: shared)."""
    return _atlas().wijken


def wijk_of(buurt_code: str) -> str:
    """The wijk code of a Haarlem buurt (from the data, not from geometry)."""
    return buurt(buurt_code).wijk_code


def buurt_at(lat: float, lon: float) -> Buurt | None:
    """The buurt holding a WGS84 point, or None outside Haarlem."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # also rejects NaN
        raise ValueError(f"not a WGS84 coordinate: lat={lat}, lon={lon}")
    atlas = _atlas()
    hits = atlas.tree.query(shapely.Point(lon, lat), predicate="intersects")
    return atlas.buurten[int(hits.min())] if len(hits) else None


def locate(
    *,
    lat: float | None = None,
    lon: float | None = None,
    buurt_code: str | None = None,
    address: str | None = None,
) -> Location:
    """A report's location, resolved: a point wins over a buurt code, which wins over an address.

    A buurt code of another municipality keeps its code, takes the wijk from the code's digits
    (CBS codes nest) and is flagged ``inside_haarlem=False``.
    """
    if (lat is None) != (lon is None):
        raise ValueError("lat and lon are given together or not at all")
    if lat is not None and lon is not None:
        found = buurt_at(lat, lon)
        return Location(
            lat=lat,
            lon=lon,
            address=address,
            buurt_code=found.code if found else None,
            wijk_code=found.wijk_code if found else None,
            resolution="point",
            inside_haarlem=found is not None,
        )
    if buurt_code is not None:
        if not _BUURT_CODE.fullmatch(buurt_code):
            raise ValueError(f"{buurt_code!r} is not a CBS buurt code (BU + 8 digits)")
        known = _atlas().by_code.get(buurt_code)
        return Location(
            address=address,
            buurt_code=buurt_code,
            wijk_code=known.wijk_code if known else f"WK{buurt_code[2:8]}",
            resolution="buurt",
            inside_haarlem=known is not None,
        )
    if address is not None:
        return Location(address=address, resolution="address_unresolved")
    return Location(resolution="none")


def measure_lookups(n: int = 100_000, seed: int = 0) -> float:
    """Point lookups per second over random points in Haarlem's bounding box."""
    west, south, east, north = _atlas().bounds
    rng = random.Random(seed)
    points = [(rng.uniform(south, north), rng.uniform(west, east)) for _ in range(n)]
    start = time.perf_counter()
    for lat, lon in points:
        buurt_at(lat, lon)
    elapsed = time.perf_counter() - start
    return n / elapsed if elapsed > 0 else math.inf
