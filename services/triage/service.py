"""The triage service: what it contributes to the common service runner."""

from __future__ import annotations

from pathlib import Path

from services.common.runtime import Runtime
from services.common.service import ServiceParts, ServiceSpec
from services.common.supervision import Background
from services.triage import api, console, plan_store, plans_api, privacy, signals, timers
from services.triage.actions import Actions
from services.triage.classifier import Classifier
from services.triage.decide import Triage
from services.triage.handlers import build_consumers
from services.triage.prevention import PreventionSettings
from services.triage.routing import load_routes


def _build(rt: Runtime) -> ServiceParts:
    # Config errors (routes) stop the start with a message naming the rule.
    triage = Triage(Classifier(), load_routes())
    rt.extras["actions"] = Actions(rt.pool, rt.settings, triage)
    consumers = build_consumers(rt, triage)
    background = [Background("safety-plans", plan_store.follow(triage))]
    if rt.settings.works_main:  # an urgent lane's process decides P1/P2 and nothing else
        signals.subscribe(consumers, rt, PreventionSettings())
        background += [
            Background("privacy-purge", privacy.daily),
            Background("workflow-timers", timers.run),
        ]
    return ServiceParts(
        kafka=consumers,
        before_start=[lambda rt: plan_store.load_into(rt, triage)],
        background=background,
    )


SPEC = ServiceSpec(
    name="triage",
    title="Veilig Haarlem — triage",
    description="Category, priority, duplicates, routing and the on-call workflow.",
    migrations=Path(__file__).parent / "migrations",
    http=[api.router, console.router, console.staff_api, plans_api.router, signals.router],
    build=_build,
    outbox=True,
    staff=True,
)
