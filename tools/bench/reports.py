"""The reports the benchmark sends.

Each report names a buurt (no point: triage never merges it as a duplicate, so every report
is an incident of its own) and describes vandalism in words the classifier is sure of: one
delivery to handhaving each, which the stand-in receiver sees. Buurten and wordings rotate,
so the load spreads over Haarlem as real reports would.
"""

from __future__ import annotations

import json
from typing import Any

from schemas import geo

DESCRIPTIONS = (
    "Graffiti gespoten op de gevel van het buurthuis en op twee bushokjes in {buurt}, "
    "vannacht ontdekt.",
    "Bushokje in {buurt} vernield, alle ruiten ingegooid, glas ligt op de stoep.",
    "Vannacht zijn in {buurt} de spiegels van geparkeerde auto's eraf getrapt.",
    "Bankjes en prullenbakken in het park in {buurt} beklad met graffiti en omgetrapt.",
)


def external_id(run: str, index: int) -> str:
    return f"bench-{run}-{index}"


def submission(run: str, index: int) -> dict[str, Any]:
    """Report number ``index`` of run ``run``: the body of ``POST /v1/incidents``."""
    buurten = geo.buurten()
    buurt = buurten[index % len(buurten)]
    wording = DESCRIPTIONS[(index // len(buurten)) % len(DESCRIPTIONS)]
    return {
        "external_id": external_id(run, index),
        "description": wording.format(buurt=buurt.name),
        "location": {"buurt_code": buurt.code},
    }


def record_size(run: str, samples: int = 1000) -> int:
    """Mean size in bytes of a report as JSON: the record size of the broker baseline."""
    sizes = [len(json.dumps(submission(run, i)).encode()) for i in range(samples)]
    return round(sum(sizes) / len(sizes))


def p1_report(run: str, n: int) -> dict[str, Any]:
    """A fire in progress: what a partner marks urgent (flag and category hint)."""
    buurt = geo.buurten()[(n * 11) % len(geo.buurten())]
    return {
        "external_id": f"bench-{run}-p1-{n}",
        "description": f"Brand in een woning in {buurt.name}, vlammen slaan uit het dak.",
        "category_hint": "brand",
        "location": {"buurt_code": buurt.code},
        "flags": {"in_progress": True},
    }
