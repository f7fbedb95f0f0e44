"""Helpers for tests against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from fastapi import FastAPI
from starlette.types import ASGIApp

from services.common.kafka_access import create_partner_topic
from services.common.kafka_security import client_options
from services.common.service import ServiceSpec, create_app
from services.common.settings import Settings
from services.common.topics import connect_admin


@contextlib.asynccontextmanager
async def fresh_database(admin_database_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test server (its URL), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_database_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_database_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin_database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def connected(settings: Settings, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the stack's database with ``schema`` on the search path."""
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": schema}
    )
    try:
        yield conn
    finally:
        await conn.close()


def stack_settings(kafka_bootstrap: str, database_url: str, topic_prefix: str) -> Settings:
    """Settings of one test's stack: its own database, topics and consumer groups."""
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=topic_prefix,
        consumer_group_prefix=f"test-{topic_prefix}",
        kafka_linger_ms=0,
    )


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
        **client_options(settings),
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


async def committed_offsets(settings: Settings, group: str) -> dict[TopicPartition, int]:
    """The offsets ``group`` has committed (the next record it reads), by partition."""
    admin = await connect_admin(settings)
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode()
    return None


async def partner_topics(settings: Settings, *codes: str) -> list[str]:
    """The partners' own submission topics (as `veilig partners add --kafka` makes them)."""
    admin = await connect_admin(settings)
    try:
        return [await create_partner_topic(admin, settings, code) for code in codes]
    finally:
        await admin.close()


async def produce(
    settings: Settings,
    topic: str,
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
) -> None:
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True)
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


@contextlib.asynccontextmanager
async def served(app: FastAPI, port: int) -> AsyncIterator[str]:
    """``app`` on a real socket on loopback (a browser or a load tool needs one); its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the service did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


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


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[int]:
    """``app`` under uvicorn on a free port of 127.0.0.1, in this process (no lifespan: a
    stand-in receiver); yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # log_config=None: leave the test process's logging alone.
    config = uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()
