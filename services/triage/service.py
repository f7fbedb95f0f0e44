"""The triage service: what it contributes to the common service runner."""

from __future__ import annotations

from pathlib import Path

from services.common.service import ServiceSpec

SPEC = ServiceSpec(
    name="triage",
    title="Veilig Haarlem — triage",
    description="Category, priority, duplicates, routing and the on-call workflow.",
    migrations=Path(__file__).parent / "migrations",
    outbox=True,
)
