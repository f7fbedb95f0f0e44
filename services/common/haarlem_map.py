"""The offline map of Haarlem: its buurten under the wijk borders, as inline SVG.

Drawn from the project's own GeoJSON of Haarlem's wijken and buurten (``schemas/data``): no
CDN, no tile server, so it works offline. The analytics dashboard colours it by counts; the
triage console pins one incident on it (its point, else its buurt highlighted).

An equirectangular projection around Haarlem's latitude: at this size (10 km) it is
indistinguishable from a proper one and needs no library.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from schemas import geo

MAP_WIDTH = 640
PIN_RADIUS = 6


def _rings(geometry: dict[str, Any]) -> list[list[list[float]]]:
    coordinates = geometry["coordinates"]
    polygons = [coordinates] if geometry["type"] == "Polygon" else coordinates
    return [ring for polygon in polygons for ring in polygon]


@dataclass(frozen=True, slots=True)
class _Projection:
    west: float
    north: float
    aspect: float
    scale: float
    height: int

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.west) * self.aspect * self.scale, (self.north - lat) * self.scale

    def path(self, geometry: dict[str, Any]) -> str:
        def ring(points: list[list[float]]) -> str:
            return "L".join(f"{x:.1f},{y:.1f}" for x, y in (self.xy(*p) for p in points))

        return " ".join(f"M{ring(r)}Z" for r in _rings(geometry))


@dataclass(frozen=True, slots=True)
class _Shapes:
    projection: _Projection
    buurten: tuple[tuple[dict[str, Any], str], ...]
    """Each buurt's properties and path."""
    wijken: tuple[tuple[str, str, str], ...]
    """Each wijk's code, name and path."""


@cache
def _shapes() -> _Shapes:
    buurten = geo.geojson_features("haarlem_buurten_2024.geojson")
    wijken = geo.geojson_features("haarlem_wijken_2024.geojson")
    points = [p for f in buurten for ring in _rings(f["geometry"]) for p in ring]
    west, east = min(p[0] for p in points), max(p[0] for p in points)
    south, north = min(p[1] for p in points), max(p[1] for p in points)
    aspect = math.cos(math.radians((north + south) / 2))
    scale = MAP_WIDTH / ((east - west) * aspect)
    projection = _Projection(west, north, aspect, scale, round((north - south) * scale))
    return _Shapes(
        projection,
        tuple((f["properties"], projection.path(f["geometry"])) for f in buurten),
        tuple(
            (f["properties"]["code"], f["properties"]["name"], projection.path(f["geometry"]))
            for f in wijken
        ),
    )


def _svg(highlight: str | None = None, pin: tuple[float, float] | None = None) -> str:
    shapes = _shapes()
    height = shapes.projection.height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="map" viewBox="0 0 {MAP_WIDTH} {height}" '
        'role="img" '
        'aria-label="Kaart van Haarlem: wijken en buurten">'
    ]
    for p, d in shapes.buurten:
        here = " here" if p["code"] == highlight else ""
        parts.append(
            f'<path class="buurt{here}" data-code="{p["code"]}" data-wijk="{p["wijk_code"]}" '
            f'data-name="{html.escape(p["name"])}" d="{d}"><title></title></path>'
        )
    for code, name, d in shapes.wijken:
        parts.append(
            f'<path class="wijk" data-code="{code}" data-name="{html.escape(name)}" '
            f'd="{d}"><title></title></path>'
        )
    if pin is not None:
        x, y = shapes.projection.xy(pin[1], pin[0])
        parts.append(f'<circle class="pin" cx="{x:.1f}" cy="{y:.1f}" r="{PIN_RADIUS}"/>')
    parts.append("</svg>")
    return "".join(parts)


@cache
def map_svg() -> str:
    """Haarlem's buurten (filled by the dashboard's script) under the wijk borders."""
    return _svg()


def incident_map_svg(lat: float | None, lon: float | None, buurt_code: str | None) -> str | None:
    """The map with one incident on it: a pin on its point when that lies in Haarlem, and its
    buurt highlighted; None when the location is not on the map (an unresolved address,
    nothing, or a place outside Haarlem)."""
    inside = lat is not None and lon is not None and geo.buurt_at(lat, lon) is not None
    known = buurt_code is not None and any(b.code == buurt_code for b in geo.buurten())
    if not inside and not known:
        return None
    pin = (lat, lon) if inside and lat is not None and lon is not None else None
    return _svg(buurt_code if known else None, pin)
