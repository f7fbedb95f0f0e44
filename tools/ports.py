"""A free TCP port of 127.0.0.1, for the stand-ins, benchmarks and tests that start servers.

Chosen below the kernel's ephemeral range: a port the kernel handed out for ``bind(0)`` can be
taken, before the caller's server binds it, as the local port of any outgoing connection (a
Kafka or database client in the same suite), and a test then fails on "address in use". Below
the range only another caller of this function could take it: it picks at random, and never
hands out a port twice in one process (a harness takes all its ports before any server binds).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20000
_PICK = random.SystemRandom()
_GIVEN: set[int] = set()  # handed out by this process


def _ephemeral_start() -> int:
    """Where the kernel's range for outgoing connections starts (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nobody listens on a moment ago (the caller binds it soon after)."""
    ceiling = _ephemeral_start()
    candidates = range(_LOWEST, ceiling) if ceiling - _LOWEST >= 1000 else range(0)
    for port in _PICK.sample(candidates, min(50, len(candidates))):
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    with socket.socket() as s:  # no room below the range: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
