"""Helpers for tests against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from fastapi import FastAPI

from services.common.service import ServiceSpec, create_app
from services.common.settings import Settings


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    within: float = 30.0,
    settle: float = 0.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from the beginning until ``until(records)`` holds (or time
    runs out), then ``settle`` seconds more to catch records that should NOT be there."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline and not until(records):
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
        if settle:
            end = loop.time() + settle
            while loop.time() < end:
                for part in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(part)
    finally:
        await consumer.stop()
    return records


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode()
    return None


async def produce(
    settings: Settings,
    topic: str,
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True
    )
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(
    spec: ServiceSpec, settings: Settings
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A service in this process: its lifespan (database, topics, consumers, relay) runs,
    and a client talks to its HTTP API without a socket."""
    app = create_app(spec, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def eventually(check: Callable[[], object], within: float = 20.0, every: float = 0.2) -> None:
    """Wait until ``check()`` (sync or async) is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(every)
