"""The intake service: what it contributes to the common service runner."""

from __future__ import annotations

from pathlib import Path

from services.common.service import ServiceSpec

SPEC = ServiceSpec(
    name="intake",
    title="Veilig Haarlem — intake",
    description=(
        "The partners' front door: reports over HTTP, Open311 and Kafka become "
        "incident reported events."
    ),
    migrations=Path(__file__).parent / "migrations",
    outbox=True,
)
