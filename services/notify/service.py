"""The notify service: what it contributes to the common service runner."""

from __future__ import annotations

from pathlib import Path

from services.common.service import ServiceSpec

SPEC = ServiceSpec(
    name="notify",
    title="Veilig Haarlem — notify",
    description=(
        "Delivers incidents to responders and partners: signed webhooks, CAP alerts, "
        "e-mail; escalation."
    ),
    migrations=Path(__file__).parent / "migrations",
    outbox=True,
)
