"""Group commit: concurrent callers share one PostgreSQL transaction.

A caller hands over its item and waits for its own result. One flusher takes everything that
has arrived and applies it in ONE transaction; what arrives meanwhile waits for the next round,
one transaction's time at most. Under load many callers share a commit (and its WAL flush);
alone, a caller is committed at once: there is no timer to wait for.

``apply`` returns one result per item, in order, or the exception of an item that failed on
its own (isolate items with savepoints where one may fail without the others). An exception
out of ``apply`` fails every caller of that round, as each would have failed alone: nothing of
the round was stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg
from prometheus_client import Histogram

T = TypeVar("T")
R = TypeVar("R")

GROUP_SIZE = Histogram(
    "veilig_group_commit_items",
    "Items that shared one transaction (group commit), by what was committed",
    ["service", "what"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)


@dataclass(slots=True)
class _Waiting(Generic[T, R]):
    item: T
    result: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        apply: Callable[[asyncpg.Connection, Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        service: str,
        what: str,
        max_items: int = 500,
    ) -> None:
        self.pool = pool
        self.apply = apply
        self.max_items = max_items
        self._size = GROUP_SIZE.labels(service, what)
        self._pending: list[_Waiting[T, R]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        waiting: _Waiting[T, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self._pending.append(waiting)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await waiting.result

    async def _flush(self) -> None:
        while self._pending:
            group = self._pending[: self.max_items]
            del self._pending[: self.max_items]
            self._size.observe(len(group))
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    results = await self.apply(conn, [w.item for w in group])
            except Exception as exc:
                for waiting in group:
                    if not waiting.result.done():
                        waiting.result.set_exception(exc)
                continue
            for waiting, result in zip(group, results, strict=True):
                if waiting.result.done():
                    continue
                if isinstance(result, BaseException):
                    waiting.result.set_exception(result)
                else:
                    waiting.result.set_result(result)
