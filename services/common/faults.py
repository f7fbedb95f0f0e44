"""Which failures are the infrastructure blinking and which are the work itself.

Every loop, consumer and HTTP route asks :func:`is_transient` before deciding what an
exception means:

- **transient** — PostgreSQL or Kafka away, restarting, overloaded or slow (connection lost or
  refused, server shutting down, too many connections, serialization conflicts, timeouts,
  retriable broker errors). The work is fine; it is waited out with capped backoff, never
  dead-lettered, and HTTP answers ``503`` with ``Retry-After``.
- **deterministic** — anything else: the same input fails the same way. A consumer moves it to
  the dead-letter topic after its attempts; a background item is quarantined.

The exception chain is walked (``raise … from …`` and implicit context), so a domain error
raised because a connection dropped still counts as transient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

# asyncpg's InterfaceError also covers programming errors; these messages are the ones that
# mean "the connection or pool went away underneath".
_GONE = (
    "connection is closed",
    "connection was closed",
    "pool is closing",
    "pool is closed",
    "released back to the pool",  # the pool took back a connection the server dropped
)

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    # Connection exceptions (class 08), operator intervention (57: admin/crash shutdown,
    # cannot connect now, query cancelled), too many connections (53300), and transaction
    # rollbacks (40: serialization failure, deadlock) which succeed when tried again.
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.TransactionRollbackError,
    # The protocol caught mid-operation by a dropped connection ("cannot switch to state …;
    # another operation is in progress"): seen when PostgreSQL restarts under load.
    asyncpg.exceptions.InternalClientError,
    KafkaConnectionError,
    KafkaTimeoutError,
    # Refused, reset, unreachable, DNS: the socket layer of either.
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# Local file-system errors are OSErrors too, but they are no network blinking.
_LOCAL_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, _LOCAL_OS_ERRORS):
        return False
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc).lower()
        return any(marker in text for marker in _GONE)
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    return False


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is infrastructure being unavailable."""
    return any(_is_transient_one(e) for e in _chain(exc))


def describe(exc: BaseException, limit: int = 500) -> str:
    """A one-line cause for logs and dead-letter headers: type and message, no traceback."""
    text = " | ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Backoff:
    """Capped exponential backoff: 0.5 s, 1 s, 2 s … up to ``cap``; ``reset`` after success."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first
