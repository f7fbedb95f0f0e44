"""The analytics service: what it contributes to the common service runner."""

from __future__ import annotations

from pathlib import Path

from services.common.service import ServiceSpec

SPEC = ServiceSpec(
    name="analytics",
    title="Veilig Haarlem — analytics",
    description="Projections, the ops dashboard and wijk reports.",
    migrations=Path(__file__).parent / "migrations",
    outbox=False,
)
