"""PostgreSQL connection pool: one schema per service, waited for at start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import typer
from rich.console import Console

from services.common.migrations import load_migrations, migrate
from services.common.settings import get_settings

log = logging.getLogger(__name__)
R = TypeVar("R")

MAX_CACHED_STATEMENT = 16 * 1024
"""Statements up to this many characters stay prepared on their connection. asyncpg's default
(1 KiB) left the longest ones, run on every batch (notify queueing a batch of deliveries,
analytics projecting one), parsed and planned anew on each call, with a round trip more."""


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    wait_seconds: float = 60.0,
) -> asyncpg.Pool:
    """Open a pool whose connections resolve unqualified names in ``schema`` first.

    Services start in any order, so a database that is not up yet is waited for (bounded)
    instead of crashing the process.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.2
    while True:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                max_cacheable_statement_size=MAX_CACHED_STATEMENT,
                server_settings={"search_path": f"{schema},public", "application_name": schema},
            )
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            if loop.time() >= deadline:
                raise ConnectionError(
                    f"PostgreSQL did not accept connections within {wait_seconds:.0f}s: {exc}"
                ) from exc
            log.warning("waiting for PostgreSQL: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            assert pool is not None
            return pool


async def release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Give back a connection a listener was held on. One whose server went away (a restart,
    a terminated backend) still holds its listeners, which asyncpg cannot remove from a closed
    connection and warns about on release: it is terminated first, which forgets them and
    hands its place in the pool back."""
    with contextlib.suppress(asyncpg.InterfaceError):  # given back already: nothing to do
        if conn.is_closed():
            conn.terminate()
    await pool.release(conn)


@contextlib.asynccontextmanager
async def listening(
    pool: asyncpg.Pool, channel: str, on_notify: Callable[..., object]
) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection that LISTENs on ``channel`` (``on_notify`` is called on every
    NOTIFY) while the body runs; the listener removed, if the connection still can, and the
    connection given back through :func:`release` on the way out.

    When the connection is lost (PostgreSQL restarted, the backend was terminated) the body
    is stopped where it waits and ``ConnectionDoesNotExistError`` raised (transient: the
    supervisor starts the loop again, which listens anew). A body that does its work on other
    pooled connections never touches this one: without that it went on, deaf, woken only by
    its poll (seen after a PostgreSQL restart: deliveries waited for notify's one-second poll
    until the service was restarted).
    """
    conn = await pool.acquire()
    task = asyncio.current_task()
    assert task is not None
    lost = False
    inside = True  # the body runs: a cancellation lands there (never in the cleanup below)

    def on_lost(_: object) -> None:  # asyncpg calls it once, when the connection is gone
        nonlocal lost
        if inside:
            lost = True
            task.cancel()

    try:
        await conn.add_listener(channel, on_notify)
        conn.add_termination_listener(on_lost)
        try:
            yield conn
        except asyncio.CancelledError:
            if lost and task.uncancel() == 0:  # our own cancellation, not a shutdown's
                raise asyncpg.ConnectionDoesNotExistError(
                    f"the connection listening on {channel} was lost"
                ) from None
            raise
    finally:
        inside = False
        with contextlib.suppress(Exception):  # a lost connection is back in the pool already
            conn.remove_termination_listener(on_lost)
            await conn.remove_listener(channel, on_notify)
        await release(pool, conn)


def run_in_schema(
    schema: str,
    migrations: Path,
    action: Callable[[asyncpg.Connection], Awaitable[R]],
    *,
    user_errors: tuple[type[Exception], ...] = (),
) -> R:
    """For the CLI: run ``action`` on a connection to a service's schema (its migrations
    applied first); an error of ``user_errors`` is printed and exits 1 instead of a trace."""

    async def run() -> R:
        conn = await asyncpg.connect(
            get_settings().database_url.get_secret_value(),
            server_settings={"search_path": f"{schema},public"},
        )
        try:
            await migrate(conn, schema, load_migrations(migrations))
            return await action(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except user_errors as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except OSError as exc:
        Console(stderr=True).print(
            f"[red]PostgreSQL is not reachable ({exc}); is it running (make up) and is "
            "DATABASE_URL right?[/red]"
        )
        raise typer.Exit(1) from exc
