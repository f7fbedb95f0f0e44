"""A free TCP port of 127.0.0.1, for the stand-ins, benchmarks and tests that start servers."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on a moment ago (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
