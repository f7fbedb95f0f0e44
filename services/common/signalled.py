"""A cache that a PostgreSQL NOTIFY empties: rows looked up once instead of once a request.

A trigger on the cached tables signals every change on a NOTIFY channel; each process listens
on one connection and empties its cache when the signal comes. The cache vouches for nothing
unless that listener is connected: it starts switched off (every lookup goes to the database),
switches on only once listening, and a lost listener connection, which may have missed a
signal, switches it off and empties it. A lookup that started before a signal is not kept: its
answer may predate the change (the intake's partner keys, notify's channels).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from services.common.db import listening
from services.common.runtime import Runtime, pause
from services.common.supervision import Loop

K = TypeVar("K")
V = TypeVar("V")

PROBE_SECONDS = 5.0
"""How often the listener connection is probed: a half-open connection fails the probe."""


class SignalledCache(Generic[K, V]):
    """Values by key, emptied by every NOTIFY on ``channel``. ``keep_missing``: whether a
    lookup that found nothing is kept too (not for keys a caller makes up: random ids must not
    fill the memory); past ``max_entries`` the cache starts over."""

    def __init__(self, channel: str, *, keep_missing: bool, max_entries: int = 10_000) -> None:
        self.channel = channel
        self.keep_missing = keep_missing
        self.max_entries = max_entries
        self.live = False
        self.generation = 0  # bumped by every invalidation
        self._entries: dict[K, V | None] = {}

    async def lookup(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The cached value of ``key``, else what ``load`` finds (kept if still current)."""
        if self.live and key in self._entries:
            return self._entries[key]
        generation = self.generation
        found = await load()
        if self.live and generation == self.generation and (found is not None or self.keep_missing):
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = found
        return found

    def invalidate(self, *_: object) -> None:
        self.generation += 1
        self._entries.clear()

    def _lost(self, *_: object) -> None:
        self.live = False
        self.invalidate()

    async def listen(self, rt: Runtime, loop: Loop) -> None:
        """The supervised body that keeps the cache honest (one listener connection)."""
        async with listening(rt.pool, self.channel, self.invalidate) as conn:
            conn.add_termination_listener(self._lost)
            try:
                self.invalidate()  # what was looked up before the listener was connected
                self.live = True
                while not rt.stopping.is_set():
                    loop.beat()
                    await pause(rt.stopping, None, PROBE_SECONDS)
                    await conn.fetchval("SELECT 1")
            finally:
                self._lost()
                with contextlib.suppress(Exception):
                    conn.remove_termination_listener(self._lost)
