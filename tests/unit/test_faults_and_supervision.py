"""Transient or not, and loops that outlive their failures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, RecordTooLargeError

from services.common.faults import Backoff, describe, is_transient
from services.common.runtime import Runtime
from services.common.supervision import Background, Health, LagCheck, Loop, supervise


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed"),
        TimeoutError(),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.InterfaceError(
            "cannot call Connection.fetchval(): connection has been released back to the pool"
        ),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation"),
        KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]"),
        KafkaTimeoutError(),
    ],
)
def test_infrastructure_away_is_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("x"),
        RecursionError("maximum recursion depth exceeded"),
        FileNotFoundError("routes.yaml"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.CheckViolationError("violates check constraint"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        RecordTooLargeError(),
    ],
)
def test_the_work_itself_failing_is_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_a_domain_error_caused_by_a_lost_connection_is_transient() -> None:
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as cause:
            raise RuntimeError("could not load the incident") from cause
    except RuntimeError as exc:
        assert is_transient(exc)


def test_describe_is_one_bounded_line() -> None:
    text = describe(ValueError("line one\nline two\n" + "x" * 1000), limit=80)
    assert "\n" not in text and len(text) == 80 and text.startswith("ValueError: line one |")


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(first=0.5, cap=3)
    assert [backoff.next() for _ in range(5)] == [0.5, 1, 2, 3, 3]
    backoff.reset()
    assert backoff.next() == 0.5


@dataclass
class FakeRuntime:
    """What supervise() touches of a Runtime."""

    health: Health = field(default_factory=lambda: Health("test"))
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


async def test_a_failing_loop_is_started_again_and_stays_alive() -> None:
    rt = FakeRuntime()
    terms: list[int] = []

    async def body(rt: Any, loop: Loop) -> None:
        terms.append(len(terms))
        if len(terms) <= 2:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection")
        while not rt.stopping.is_set():
            loop.beat()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(supervise(cast(Runtime, rt), Background("relay", body)))
    for _ in range(400):
        if len(terms) >= 3:
            break
        await asyncio.sleep(0.01)
    loop = rt.health.loops["relay"]
    assert len(terms) == 3 and loop.restarts == 2 and loop.alive()
    assert loop.last_error and "AdminShutdownError" in loop.last_error
    rt.stopping.set()
    await asyncio.wait_for(task, 2)
    assert not loop.alive()


async def test_a_loop_that_stops_beating_is_not_alive() -> None:
    rt = FakeRuntime()
    hung = asyncio.Event()

    async def body(rt: Any, loop: Loop) -> None:
        await hung.wait()  # e.g. a call without a timeout on a half-open connection

    task = asyncio.create_task(
        supervise(cast(Runtime, rt), Background("worker", body, stale_after=0.05))
    )
    await asyncio.sleep(0.2)
    assert not rt.health.loops["worker"].alive()
    task.cancel()


async def test_lag_checks_compare_with_their_threshold_and_a_failing_probe_is_not_ok() -> None:
    rt = FakeRuntime()

    async def fine(_: Any) -> float:
        return 3.0

    async def stuck(_: Any) -> float:
        return 120.0

    async def away(_: Any) -> float:
        raise ConnectionRefusedError(111, "refused")

    for name, probe in (("fine", fine), ("stuck", stuck), ("away", away)):
        rt.health.add_check(LagCheck(name, probe, threshold_seconds=60))
    lags = await rt.health.lags(cast(Runtime, rt))
    assert lags["fine"]["ok"] and not lags["stuck"]["ok"] and not lags["away"]["ok"]
    assert lags["stuck"]["seconds"] == 120.0
