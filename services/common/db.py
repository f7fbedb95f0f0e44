"""PostgreSQL connection pool: one schema per service, waited for at start."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

log = logging.getLogger(__name__)


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
