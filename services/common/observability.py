"""Logs, traces and metrics wiring shared by every service (called once per process).

- Logs: one JSON object per line with service, incident id and trace id (no personal data:
  log call sites pass ids and codes, never report bodies).
- Traces: OpenTelemetry, configured by the standard ``OTEL_*`` variables; an OTLP/HTTP
  exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces variant) is set, and/or a file
  of JSON spans when ``VEILIG_TRACE_FILE`` is set (tests, debugging). With neither, tracing
  is off and costs nothing: the no-op tracer still carries the W3C trace context on.
- Metrics: the process-wide Prometheus registry, served on ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import SpanKind

incident_id_var: ContextVar[str | None] = ContextVar("incident_id", default=None)

# Attributes every LogRecord has, plus uvicorn's ANSI-coloured duplicate of the message.
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"color_message"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        line["trace_id"] = format(span.trace_id, "032x") if span.is_valid else None
        line["incident_id"] = incident_id_var.get()
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def setup_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka reports every coordinator hiccup at ERROR while it retries by itself.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def setup_tracing(service: str) -> TracerProvider | None:
    """The process's tracer provider, or None when no exporter is configured (tracing off)."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otlp = bool(endpoint) and os.environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"
    trace_file = os.environ.get("VEILIG_TRACE_FILE")
    if not otlp and not trace_file:
        return None
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", f"veilig-{service}")}
    )
    provider = TracerProvider(resource=resource)
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_file:
        out = open(trace_file, "a", encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
        provider.add_span_processor(
            SimpleSpanProcessor(
                ConsoleSpanExporter(
                    out=out, formatter=lambda span: span.to_json(indent=None) + "\n"
                )
            )
        )
    trace.set_tracer_provider(provider)
    return provider


tracer = trace.get_tracer("veilig")


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (None outside any trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def record_traceparent(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The traceparent header of a Kafka record."""
    for name, value in headers or ():
        if name == "traceparent":
            return value.decode()
    return None


@contextmanager
def span_from(
    traceparent: str | None,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, str] | None = None,
) -> Iterator[str | None]:
    """A span continuing the trace of ``traceparent`` (a message's header); yields the
    traceparent to put on what this step produces, so that one report stays one trace."""
    parent = propagate.extract({"traceparent": traceparent} if traceparent else {})
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes):
        yield current_traceparent() or traceparent
