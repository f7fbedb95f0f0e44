"""The cache a NOTIFY empties: what it keeps, and what it must not (no database here; the
listener itself is tested with PostgreSQL in test_notify and test_intake)."""

from __future__ import annotations

import asyncio
import functools

from services.common.signalled import SignalledCache


class Table:
    """A stand-in for the cached table: counts the lookups that reach it."""

    def __init__(self, rows: dict[str, str]) -> None:
        self.rows = rows
        self.reads = 0

    async def load(self, key: str) -> str | None:
        self.reads += 1
        await asyncio.sleep(0)
        return self.rows.get(key)


def cache(*, keep_missing: bool = True, max_entries: int = 10) -> SignalledCache[str, str]:
    made: SignalledCache[str, str] = SignalledCache(
        "test", keep_missing=keep_missing, max_entries=max_entries
    )
    made.live = True  # as once its listener is connected
    return made


async def test_a_value_is_looked_up_once_until_the_signal() -> None:
    table, found = Table({"a": "1"}), cache()
    assert await found.lookup("a", lambda: table.load("a")) == "1"
    assert await found.lookup("a", lambda: table.load("a")) == "1"
    assert table.reads == 1
    table.rows["a"] = "2"
    found.invalidate()
    assert await found.lookup("a", lambda: table.load("a")) == "2"
    assert table.reads == 2


async def test_an_answer_that_a_signal_overtook_is_not_kept() -> None:
    """The channel was read as missing, then set and signalled before the read returned: the
    stale answer is returned once but the next lookup goes to the table (issue #13's CI run
    saw the nightly summary find no channel for good)."""
    table, found = Table({}), cache()

    async def overtaken() -> str | None:
        stale = await table.load("horeca")
        table.rows["horeca"] = "webhook"
        found.invalidate()  # the trigger's NOTIFY, while the old answer is on its way
        return stale

    assert await found.lookup("horeca", overtaken) is None
    assert await found.lookup("horeca", lambda: table.load("horeca")) == "webhook"


async def test_nothing_is_kept_while_no_listener_is_connected() -> None:
    table, found = Table({"a": "1"}), cache()
    found.live = False
    for _ in range(3):
        assert await found.lookup("a", lambda: table.load("a")) == "1"
    assert table.reads == 3


async def test_a_missing_key_is_kept_only_when_asked() -> None:
    table = Table({})
    for keep_missing, reads in ((True, 1), (False, 2)):
        table.reads = 0
        found = cache(keep_missing=keep_missing)
        for _ in range(2):
            assert await found.lookup("x", lambda: table.load("x")) is None
        assert table.reads == reads


async def test_the_cache_starts_over_when_full() -> None:
    table, found = Table({str(n): str(n) for n in range(4)}), cache(max_entries=2)
    for key in ("0", "1", "2"):
        await found.lookup(key, functools.partial(table.load, key))
    assert table.reads == 3
    await found.lookup("2", lambda: table.load("2"))
    await found.lookup("0", lambda: table.load("0"))
    assert table.reads == 4  # "2" was kept after the start-over, "0" was not
