"""`veilig geo`: look up and measure Haarlem's area resolution from the command line."""

from __future__ import annotations

import typer

from schemas import geo

geo_app = typer.Typer(name="geo", help="Haarlem buurt/wijk lookup.", no_args_is_help=True)


@geo_app.command()
def locate(lat: float, lon: float) -> None:
    """Print the buurt and wijk of a WGS84 point (LAT LON), or that it is outside Haarlem."""
    found = geo.buurt_at(lat, lon)
    if found is None:
        typer.echo("outside Haarlem")
    else:
        typer.echo(f"{found.code} {found.name} / {found.wijk_code} {found.wijk_name}")


@geo_app.command()
def bench(n: int = typer.Option(100_000, min=1, help="Number of random points.")) -> None:
    """Measure point lookups per second (random points in Haarlem's bounding box)."""
    typer.echo(f"{geo.measure_lookups(n):,.0f} lookups/s ({n:,} points, one at a time)")
