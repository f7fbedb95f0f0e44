"""Group commit with an in-memory stand-in for the pool: callers that arrive together share a
round, each gets its own result, and failures reach exactly the callers they concern."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import asyncpg
import pytest

from services.common.groupcommit import GroupCommit


class FakeConnection:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self.log.append("begin")
        yield
        self.log.append("commit")


class FakePool:
    def __init__(self) -> None:
        self.log: list[str] = []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        await asyncio.sleep(0.01)  # a round trip: what arrives meanwhile joins the next round
        yield FakeConnection(self.log)


def committer(
    pool: FakePool, rounds: list[list[int]], fail_round: bool = False
) -> GroupCommit[int, int]:
    async def apply(_: Any, items: Sequence[int]) -> list[int | BaseException]:
        rounds.append(list(items))
        if fail_round:
            raise ConnectionResetError("the database went away")
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    return GroupCommit(cast(asyncpg.Pool, pool), apply, service="test", what="numbers")


async def test_callers_that_arrive_together_share_one_transaction() -> None:
    pool, rounds = FakePool(), []
    commit = committer(pool, rounds)
    results = await asyncio.gather(*(commit.submit(i) for i in range(20)))
    assert results == [i * 10 for i in range(20)]
    assert sum(len(r) for r in rounds) == 20 and len(rounds) < 20
    assert pool.log.count("commit") == len(rounds)


async def test_one_bad_item_fails_only_its_caller() -> None:
    commit = committer(FakePool(), [])
    results = await asyncio.gather(
        commit.submit(1), commit.submit(-1), commit.submit(2), return_exceptions=True
    )
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], ValueError)


async def test_a_failed_round_fails_every_caller_in_it() -> None:
    commit = committer(FakePool(), [], fail_round=True)
    results = await asyncio.gather(*(commit.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionResetError) for r in results)


async def test_a_caller_alone_is_committed_at_once() -> None:
    pool, rounds = FakePool(), []
    commit = committer(pool, rounds)
    assert await asyncio.wait_for(commit.submit(7), timeout=1) == 70
    assert rounds == [[7]]


@pytest.mark.parametrize("count", [1200])
async def test_rounds_are_bounded(count: int) -> None:
    rounds: list[list[int]] = []
    commit = committer(FakePool(), rounds)
    await asyncio.gather(*(commit.submit(i) for i in range(count)))
    assert max(len(r) for r in rounds) <= 500
