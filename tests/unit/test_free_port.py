"""tools.ports: ports for test and bench servers, away from the kernel's ephemeral range."""

from __future__ import annotations

import socket

from tools.ports import _ephemeral_start, free_port


def test_a_free_port_lies_below_the_range_outgoing_connections_take_their_ports_from() -> None:
    ports = {free_port() for _ in range(20)}
    assert all(20000 <= port < _ephemeral_start() for port in ports)
    assert len(ports) > 1  # picked at random, not the same one every time
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # free indeed


def test_ports_taken_one_after_another_before_anything_binds_differ() -> None:
    """A harness takes every port of its services first, then starts them."""
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_port_in_use_is_never_handed_out() -> None:
    listeners = []
    try:
        for _ in range(200):
            s = socket.socket()
            s.bind(("127.0.0.1", free_port()))
            s.listen()
            listeners.append(s)
        taken = {s.getsockname()[1] for s in listeners}
        assert len(taken) == len(listeners)
        assert all(free_port() not in taken for _ in range(200))
    finally:
        for s in listeners:
            s.close()
