"""What a running service hands to its handlers, background tasks and HTTP routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi import HTTPException, Request
from faststream.kafka import KafkaBroker

from services.common.settings import Settings
from services.common.supervision import Health


@dataclass
class Runtime:
    """What a running service hands to its handlers and background tasks."""

    settings: Settings
    pool: asyncpg.Pool
    broker: KafkaBroker
    health: Health
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # What a service's build() makes for its HTTP routes (e.g. triage's actions), by name.
    extras: dict[str, Any] = field(default_factory=dict)


async def runtime(request: Request) -> Runtime:
    """FastAPI dependency: the running service's runtime (503 until it is started). A
    coroutine, so that FastAPI does not hand every request to a worker thread for it."""
    found = request.app.state.service.get("runtime")
    if not isinstance(found, Runtime):
        raise HTTPException(status_code=503, detail="service is starting")
    return found


async def pause(stopping: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Sleep until ``seconds`` pass, ``wake`` is set or the service stops: how background
    tasks (relays, workers, timers) idle without missing a shutdown or a wake-up."""
    waiters = [asyncio.create_task(stopping.wait())]
    if wake is not None:
        waiters.append(asyncio.create_task(wake.wait()))
    await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
