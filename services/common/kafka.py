"""The Kafka broker every service uses: idempotent producer, telemetry and metrics."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from services.common.kafka_security import broker_security
from services.common.settings import ServiceName, Settings


def make_broker(
    settings: Settings, service: ServiceName, tracer_provider: TracerProvider | None = None
) -> KafkaBroker:
    return KafkaBroker(
        settings.bootstrap_servers,
        security=broker_security(settings),
        # How soon a consumer by pattern (intake's per-partner submission topics) sees a
        # partner's new topic.
        metadata_max_age_ms=int(settings.kafka_metadata_max_age_seconds * 1000),
        client_id=f"veilig-{service}",
        # Idempotence implies acks=all: a retried send never writes a second copy.
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.kafka_linger_ms,
        allow_auto_create_topics=False,
        graceful_timeout=settings.shutdown_grace_seconds,
        # One line per message at INFO drowns the domain logs; FastStream logs it at DEBUG.
        log_level=logging.DEBUG,
        middlewares=(
            KafkaTelemetryMiddleware(tracer_provider=tracer_provider),
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=f"veilig-{service}"),
        ),
    )
