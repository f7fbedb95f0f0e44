"""The rules of console sessions that need no database: when a session is over, which host
gets a cookie without Secure, and which requests count as cross-site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from services.common.problems import Problem
from services.common.sessions import SessionPolicy, is_loopback, refuse_cross_site, same_origin
from services.common.settings import Settings

T0 = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
POLICY = SessionPolicy(idle=timedelta(minutes=30), lifetime=timedelta(hours=12))


def test_a_session_in_use_lives_until_its_absolute_lifetime() -> None:
    assert POLICY.alive(
        T0, T0 + timedelta(hours=11, minutes=50), T0 + timedelta(hours=11, minutes=59)
    )
    assert not POLICY.alive(T0, T0 + timedelta(hours=11, minutes=59), T0 + timedelta(hours=12))


def test_a_session_left_alone_ends_after_the_idle_timeout() -> None:
    assert POLICY.alive(T0, T0, T0 + timedelta(minutes=29, seconds=59))
    assert not POLICY.alive(T0, T0, T0 + timedelta(minutes=30))


def test_the_policy_comes_from_settings() -> None:
    policy = SessionPolicy.of(Settings(console_idle_minutes=5, console_session_hours=8))
    assert policy == SessionPolicy(idle=timedelta(minutes=5), lifetime=timedelta(hours=8))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("localhost", True),
        ("console.localhost", True),
        ("[::1]", True),
        ("::1", True),
        ("10.0.0.5", False),
        ("veilig.haarlem.nl", False),
        ("localhost.example.org", False),
        ("", False),
    ],
)
def test_only_loopback_hosts_get_a_cookie_without_secure(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("origin", "same"),
    [
        ("https://veilig.haarlem.nl", True),
        ("https://veilig.haarlem.nl:443", False),  # browsers never send the default port
        ("http://veilig.haarlem.nl", False),
        ("https://evil.example", False),
        ("https://veilig.haarlem.nl.evil.example", False),
        ("null", False),
        (None, False),
        ("", False),
    ],
)
def test_the_origin_must_be_the_site_itself(origin: str | None, same: bool) -> None:
    assert same_origin(origin, "https://veilig.haarlem.nl/") is same


def _request(method: str, origin: str | None) -> Request:
    headers = [(b"host", b"127.0.0.1:8082")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {
        "type": "http",
        "method": method,
        "scheme": "http",
        "server": ("127.0.0.1", 8082),
        "path": "/console/api/signout",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
    }
    return Request(scope)


def test_reading_needs_no_origin_but_changing_state_needs_the_sites_own() -> None:
    refuse_cross_site(_request("GET", None))
    refuse_cross_site(_request("POST", "http://127.0.0.1:8082"))
    for origin in (None, "http://evil.example"):
        with pytest.raises(Problem) as refused:
            refuse_cross_site(_request("POST", origin))
        assert refused.value.status == 403
