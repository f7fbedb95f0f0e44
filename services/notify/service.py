"""The notify service: what it contributes to the common service runner.

Three loops share one runtime: the consumer of ``incident-events`` (decides and queues
messages), the delivery worker (sends, retries) and the escalation task (acknowledgement
timers), plus the outbox relay that publishes ``notification-events`` and the listener that
keeps the channel cache honest.
"""

from __future__ import annotations

import functools
from pathlib import Path

from services.common.runtime import Runtime
from services.common.service import ServiceParts, ServiceSpec
from services.common.supervision import Background, LagCheck
from services.notify import api, nightlife
from services.notify.delivery import DeliveryWorker, oldest_due_delivery
from services.notify.escalation import escalation_task
from services.notify.handlers import build_consumer
from services.notify.registry import load_registry
from services.notify.settings import NotifySettings
from services.notify.store import Notify


def make_spec(config: NotifySettings | None = None) -> ServiceSpec:
    """The service with ``config`` (default: from the NOTIFY_* environment, read at start)."""

    def build(rt: Runtime) -> ServiceParts:
        settings = config or NotifySettings()
        # A broken registry stops the start with a message naming the entry.
        notify = Notify(rt.settings, settings, load_registry(settings.registry_file))
        rt.extras["notify"] = notify
        # An urgent lane's process (LANE=urgent) queues and sends P1/P2 and nothing else.
        urgent_only = not rt.settings.works_main
        worker = DeliveryWorker(notify, urgent_only=urgent_only)
        background = [
            Background("channel-cache", notify.channels.listen),
            Background("delivery-worker", worker.run),
        ]
        if not urgent_only:
            background += [
                Background("escalation-timers", lambda rt, loop: escalation_task(rt, loop, notify)),
                Background(
                    "nightlife-summary",
                    lambda rt, loop: nightlife.nightly(rt, loop, notify),
                    stale_after=3 * nightlife.CHECK_SECONDS,
                ),
            ]
        return ServiceParts(
            kafka=build_consumer(rt, notify),
            background=background,
            lag_checks=[
                LagCheck(
                    "due-deliveries",
                    functools.partial(oldest_due_delivery, urgent_only=urgent_only),
                    settings.due_stuck_seconds,
                )
            ],
        )

    return ServiceSpec(
        name="notify",
        title="Veilig Haarlem — notify",
        description=(
            "Delivers incidents to responders and partners: signed webhooks, CAP alerts, "
            "e-mail; acknowledgements and escalation."
        ),
        migrations=Path(__file__).parent / "migrations",
        http=[api.router, api.operators],
        build=build,
        outbox=True,
        staff=True,
        channel_secrets=True,
    )


SPEC = make_spec()
