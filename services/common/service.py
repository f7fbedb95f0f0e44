"""How a service process runs: one FastAPI app (health, the service's own routes) served by
uvicorn, whose lifespan opens PostgreSQL (migrations applied), ensures the topics, starts the
Kafka subscribers and the service's background tasks, and on SIGTERM stops taking messages,
lets in-flight ones finish (offsets committed), then closes.

``/metrics`` is not on the app's port: its exact per-partner counters are for the scraper,
so it is served on a port of its own bound to ``METRICS_HOST`` (loopback by default). The
API documentation (``/docs``, ``/redoc``, ``/openapi.json``) is served only in local
development; partners get the committed documents (``schemas/openapi/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaRouter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import start_http_server

from services.common import dlq, pii, problems
from services.common.db import create_pool
from services.common.http import BodySizeLimit
from services.common.kafka import make_broker
from services.common.migrations import load_migrations, migrate
from services.common.observability import setup_logging, setup_tracing
from services.common.outbox import outbox_lag, relays
from services.common.runtime import Runtime
from services.common.settings import ServiceName, Settings, get_settings
from services.common.staff import ensure_schema
from services.common.supervision import Background, Health, LagCheck, supervise
from services.common.topics import apply_topics

log = logging.getLogger(__name__)


@dataclass
class ServiceSpec:
    """What one service contributes; ``build`` is called once the runtime exists."""

    name: ServiceName
    title: str
    description: str
    migrations: Path
    # HTTP routes; handlers reach the runtime through the ``runtime`` dependency below.
    http: list[APIRouter] = field(default_factory=list)
    # Called with the runtime before the broker starts: returns the Kafka router with the
    # service's subscribers and its long-running tasks (relays, timers).
    build: Callable[[Runtime], ServiceParts] | None = None
    # Services that publish through the transactional outbox get its relay.
    outbox: bool = False
    max_body_bytes: int = 1_048_576
    # Services with staff APIs share the staff accounts schema (services/common/staff.py).
    staff: bool = False
    # Services that seal or open webhook and callback secrets do not start without the
    # secrets key; no service starts without the PII keys (each seals what it dead-letters).
    channel_secrets: bool = False
    # Exception handlers beyond problem details (e.g. Open311's own error format).
    exception_handlers: dict[
        type[Exception], Callable[[Request, Exception], Awaitable[Response]]
    ] = field(default_factory=dict)


@dataclass
class ServiceParts:
    kafka: KafkaRouter | None = None
    # Awaited before the broker starts: state the consumers need from their first message.
    before_start: list[Callable[[Runtime], Awaitable[None]]] = field(default_factory=list)
    background: list[Background] = field(default_factory=list)
    # Work a loop owes, whose age beyond a threshold makes the service not ready.
    lag_checks: list[LagCheck] = field(default_factory=list)


def create_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracer_provider = setup_tracing(spec.name)
    broker = make_broker(settings, spec.name, tracer_provider)
    state: dict[str, object] = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url.get_secret_value(), spec.name)
        async with pool.acquire() as conn:
            applied = await migrate(conn, spec.name, load_migrations(spec.migrations))
            # Every service seals with the period keys (what it dead-letters, at least).
            await dlq.ensure_schema(conn)
            if spec.staff:
                await ensure_schema(conn)
        if applied:
            log.info("applied migrations", extra={"versions": applied})
        await apply_topics(settings)
        runtime = Runtime(settings=settings, pool=pool, broker=broker, health=Health(spec.name))
        parts = spec.build(runtime) if spec.build else ServiceParts()
        for step in parts.before_start:
            await step(runtime)
        if parts.kafka is not None:
            broker.include_router(parts.kafka)
        await broker.start()
        background = list(parts.background)
        for check in parts.lag_checks:
            runtime.health.add_check(check)
        if spec.outbox:
            background += relays(settings)
            runtime.health.add_check(LagCheck("outbox", outbox_lag, settings.outbox_stuck_seconds))
        tasks = [asyncio.create_task(supervise(runtime, b)) for b in background]
        state.update(ready=True, runtime=runtime)
        log.info("service ready", extra={"port": settings.port_of(spec.name)})
        try:
            yield
        finally:
            state["ready"] = False
            runtime.stopping.set()
            log.info("stopping: finishing in-flight work")
            await broker.stop()  # waits up to graceful_timeout for running handlers
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=settings.shutdown_grace_seconds)
                for task in pending:
                    task.cancel()
            await pool.close()
            if tracer_provider is not None:
                tracer_provider.shutdown()
            log.info("stopped")

    docs = settings.local_development
    app = FastAPI(
        title=spec.title,
        description=spec.description,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.service = state
    problems.install(app)
    for exc_type, handler in spec.exception_handlers.items():
        app.add_exception_handler(exc_type, handler)
    app.add_middleware(BodySizeLimit, max_bytes=spec.max_body_bytes)
    if tracer_provider is not None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, excluded_urls="health/.*"
        )
    for router in spec.http:
        app.include_router(router)

    @app.get("/health/live", tags=["operations"], summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get(
        "/health/ready",
        tags=["operations"],
        summary="Broker and database reachable, background loops alive, no work stuck",
        responses={
            503: {
                "description": "Not ready: the body says which check failed",
                "content": {"application/json": {}},
            }
        },
    )
    async def ready() -> JSONResponse:
        checks: dict[str, bool] = {
            "started": bool(state["ready"]),
            "database": False,
            "kafka": False,
            "loops": False,
            "lag": False,
        }
        body: dict[str, object] = {}
        runtime = state.get("runtime")
        if checks["started"] and isinstance(runtime, Runtime):
            with contextlib.suppress(Exception):
                checks["database"] = await runtime.pool.fetchval("SELECT 1", timeout=2) == 1
            with contextlib.suppress(Exception):
                checks["kafka"] = await runtime.broker.ping(timeout=2.0)
            loops = {name: loop.snapshot() for name, loop in runtime.health.loops.items()}
            lags = await runtime.health.lags(runtime)
            checks["loops"] = all(loop["alive"] for loop in loops.values())
            checks["lag"] = all(lag["ok"] for lag in lags.values())
            body = {"loops": loops, "lag": lags}
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks, **body},
            status_code=200 if ok else 503,
        )

    return app


def run(spec: ServiceSpec) -> None:
    """Entry point of ``python -m services.<name>``."""
    settings = get_settings()
    setup_logging(spec.name, settings.log_level, settings.log_format)
    try:
        pii.require_keys(pii.PII, *([pii.SECRETS] if spec.channel_secrets else []))
    except pii.SealError as exc:
        sys.exit(f"{spec.name} does not start: {exc}")
    app = create_app(spec, settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.port_of(spec.name),
        log_config=None,
        # Named, not "auto": measured 15-20 % more single reports per CPU second than asyncio
        # with h11 (decision 0006, "Sessions 12 and 13"), and a missing wheel fails loudly.
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    metrics, _ = start_http_server(settings.metrics_port_of(spec.name), settings.metrics_host)
    try:
        # uvicorn turns SIGTERM/SIGINT into a graceful shutdown, which runs the lifespan exit.
        uvicorn.Server(config).run()
    finally:
        metrics.shutdown()
