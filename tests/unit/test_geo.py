"""Haarlem's geography: point -> buurt -> wijk, outside points flagged, no guessing."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas import geo
from schemas.cli import geo_app

DATA = Path(geo.__file__).parent / "data"
with (DATA / "haarlem_areas_2024.csv").open(encoding="utf-8", newline="") as _f:
    AREAS = list(csv.DictReader(_f))

# Buurt centroids that fall in a neighbouring wijk's (independently generalised) polygon.
CENTROID_IN_OTHER_WIJK = {
    "BU03920303",
    "BU03920401",
    "BU03920402",
    "BU03920601",
    "BU03921201",
    "BU03922004",
}


def test_grote_markt_is_in_the_binnenstad() -> None:
    found = geo.buurt_at(52.3812, 4.6366)
    assert found is not None
    assert (found.code, found.name, found.wijk_code) == ("BU03920102", "Binnenstad", "WK039201")


def test_the_dam_in_amsterdam_is_outside_haarlem() -> None:
    assert geo.buurt_at(52.3731, 4.8926) is None
    location = geo.locate(lat=52.3731, lon=4.8926)
    assert location.inside_haarlem is False
    assert (location.lat, location.lon, location.resolution) == (52.3731, 4.8926, "point")
    assert location.buurt_code is None and location.wijk_code is None


def test_there_are_111_buurten_in_21_wijken() -> None:
    buurten = geo.buurten()
    assert len(buurten) == 111 == len(AREAS)
    assert {b.wijk_code for b in buurten} == {f"WK0392{n:02d}" for n in range(1, 22)}


@pytest.mark.parametrize("row", AREAS, ids=lambda r: r["buurt_code"])
def test_every_centroid_resolves_to_its_own_buurt_and_wijk(row: dict[str, str]) -> None:
    location = geo.locate(lat=float(row["centroid_lat"]), lon=float(row["centroid_lon"]))
    assert location.buurt_code == row["buurt_code"]
    assert location.wijk_code == row["wijk_code"]
    assert location.inside_haarlem is True
    assert geo.wijk_of(row["buurt_code"]) == row["wijk_code"]
    assert geo.buurt(row["buurt_code"]).wijk_name == row["wijk_name"]


def test_the_wijk_comes_from_the_buurt_not_from_the_wijk_polygons() -> None:
    rows = [r for r in AREAS if r["buurt_code"] in CENTROID_IN_OTHER_WIJK]
    assert len(rows) == 6
    for row in rows:
        location = geo.locate(lat=float(row["centroid_lat"]), lon=float(row["centroid_lon"]))
        assert location.wijk_code == row["wijk_code"]


def test_a_buurt_code_resolves_to_its_wijk() -> None:
    location = geo.locate(buurt_code="BU03920102", address="Grote Markt 2")
    assert (location.resolution, location.wijk_code, location.inside_haarlem) == (
        "buurt",
        "WK039201",
        True,
    )
    assert location.lat is None


def test_a_buurt_code_elsewhere_is_kept_and_flagged() -> None:
    location = geo.locate(buurt_code="BU03630000")
    assert (location.buurt_code, location.wijk_code, location.inside_haarlem) == (
        "BU03630000",
        "WK036300",
        False,
    )
    with pytest.raises(KeyError, match="not a buurt of Haarlem"):
        geo.wijk_of("BU03630000")


def test_an_address_is_not_guessed() -> None:
    location = geo.locate(address="Grote Markt 2, Haarlem")
    assert location.resolution == "address_unresolved"
    assert (location.buurt_code, location.wijk_code, location.inside_haarlem) == (None, None, None)
    assert location.address == "Grote Markt 2, Haarlem"


def test_no_location() -> None:
    assert geo.locate().resolution == "none"


def test_a_point_wins_over_a_buurt_code() -> None:
    location = geo.locate(lat=52.3812, lon=4.6366, buurt_code="BU03921201")
    assert (location.resolution, location.buurt_code) == ("point", "BU03920102")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lat": 52.38}, "together"),
        ({"lat": 95.0, "lon": 4.6}, "not a WGS84"),
        ({"lat": float("nan"), "lon": 4.6}, "not a WGS84"),
        ({"buurt_code": "Binnenstad"}, "not a CBS buurt code"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        geo.locate(**kwargs)  # type: ignore[arg-type]


def test_shipped_data_is_the_documented_bytes() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    listed = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)
    )
    assert len(listed) == 5
    for name, digest in listed.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
    assert "Kadaster / Centraal Bureau voor de Statistiek, 2024 (via cartomap/nl)" in readme


def test_cli_locate_and_bench() -> None:
    runner = CliRunner()
    result = runner.invoke(geo_app, ["locate", "52.3812", "4.6366"])
    assert result.exit_code == 0, result.output
    assert "BU03920102 Binnenstad / WK039201 Oude Stad" in result.output
    result = runner.invoke(geo_app, ["locate", "52.3731", "4.8926"])
    assert "outside Haarlem" in result.output
    result = runner.invoke(geo_app, ["bench", "--n", "200"])
    assert result.exit_code == 0, result.output
    assert re.search(r"[\d,]+ lookups/s", result.output)
