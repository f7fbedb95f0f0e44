"""The analytics service: what it contributes to the common service runner."""

from __future__ import annotations

from pathlib import Path

from services.analytics import api, pages
from services.analytics.consumers import build_consumers
from services.analytics.kafka_monitor import MONITOR, KafkaMonitor
from services.common.runtime import Runtime
from services.common.service import ServiceParts, ServiceSpec
from services.common.supervision import Background, Loop


def _build(rt: Runtime) -> ServiceParts:
    monitor = rt.extras[MONITOR] = KafkaMonitor(rt.settings)

    async def watch_kafka(rt: Runtime, loop: Loop) -> None:
        await monitor.run(rt.stopping, loop.beat)

    return ServiceParts(
        kafka=build_consumers(rt), background=[Background("kafka-monitor", watch_kafka)]
    )


SPEC = ServiceSpec(
    name="analytics",
    title="Veilig Haarlem — analytics",
    description=(
        "Projections of every event, the live ops dashboard (`/dashboard`) and wijk reports. "
        "Staff only (`Authorization: Bearer <staff token>`); counts below 5 are shown as `<5` "
        "to every role but ops."
    ),
    migrations=Path(__file__).parent / "migrations",
    http=[api.router, pages.router],
    build=_build,
    outbox=False,
)
