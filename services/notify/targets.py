"""Where notify may send a webhook: the target policy, and an HTTP client that enforces it.

A recipient's webhook URL is configuration an operator types in, and notify sends personal
data to it, signed, from inside the platform's network. So:

- **https** is required for ``full`` and ``operational`` recipients; plain ``http`` only to
  loopback, and only when local development is switched on (``LOCAL_DEVELOPMENT``). ``coarse``
  messages (no free text, no exact location, no reporter) may use http to a public address.
- **Only public addresses.** Loopback, link-local (cloud metadata at ``169.254.169.254``),
  private, shared (CGNAT), reserved, multicast and unspecified addresses are refused unless a
  network in ``NOTIFY_WEBHOOK_ALLOWED_NETWORKS`` holds them (an internal receiver); loopback is
  allowed too in local development. IPv4 addresses inside IPv6 (``::ffff:10.0.0.1``, NAT64)
  are judged as the IPv4 address they carry.
- **No DNS rebinding**: every address a name resolves to is checked, and the connection goes
  to a checked address. The check lives in the client's resolver (:class:`PolicyResolver`),
  whose answer is the very address aiohttp opens the socket to, so there is no second lookup
  an attacker's DNS could answer differently (aiohttp keeps a checked answer for 10 s). TLS
  still verifies the certificate against the name.
- **Answers are capped**: at most ``NOTIFY_WEBHOOK_MAX_RESPONSE_BYTES`` of a body are read (it
  is never used: the outcome is the status line), so a receiver cannot make notify buffer an
  endless answer. Redirects are never followed (:mod:`services.notify.webhooks`), and no proxy
  from the environment is used (it would connect on our behalf, unchecked).

``veilig recipients set`` refuses a forbidden URL with the reason (:func:`check_target`); the
client refuses it again at send time, when the settings or the DNS may have changed since.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from schemas.taxonomy import Profile

if TYPE_CHECKING:
    from services.common.settings import Settings
    from services.notify.settings import NotifySettings

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
NAT64 = IPv6Network("64:ff9b::/96")
RESOLVE_TIMEOUT = 5.0  # seconds, when `veilig recipients set` looks a name up
_SECURE_PROFILES = (Profile.FULL, Profile.OPERATIONAL)


class TargetRefused(ValueError):
    """A webhook target the policy forbids; the text says why."""


def is_loopback_name(host: str) -> bool:
    """``localhost``, a name under ``.localhost`` (RFC 6761) or a loopback address literal."""
    host = host.strip("[]").lower().rstrip(".")
    address = _literal(host)
    if address is not None:
        return _embedded(address).is_loopback
    return host == "localhost" or host.endswith(".localhost")


def _literal(host: str) -> IPAddress | None:
    """The address a URL's host is, or None for a name."""
    try:
        return ip_address(host)
    except ValueError:
        return None


def _embedded(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, NAT64), else the address itself."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _not_public(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is one."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """What the settings allow; see the module's description."""

    local_development: bool = False
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, settings: Settings, config: NotifySettings) -> TargetPolicy:
        return cls(settings.local_development, config.webhook_allowed_networks)

    def check_address(self, address: IPAddress) -> None:
        """Raise :class:`TargetRefused` unless ``address`` may be connected to."""
        judged = _embedded(address)
        if any(judged in net or address in net for net in self.allowed_networks):
            return
        if judged.is_loopback and self.local_development:
            return
        reason = _not_public(judged)
        if reason is not None:
            raise TargetRefused(
                f"{address} is {reason}; allow its network in NOTIFY_WEBHOOK_ALLOWED_NETWORKS "
                "if this receiver is meant to be internal"
            )

    def check_url(self, url: str | URL, profile: Profile) -> URL:
        """What can be told from the URL alone: scheme, host, and the address if it is one."""
        try:
            parsed = URL(url)
        except ValueError as exc:
            raise TargetRefused(f"not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise TargetRefused("an http(s) URL with a host is needed")
        loopback = is_loopback_name(parsed.host)
        plain_allowed = profile not in _SECURE_PROFILES or (self.local_development and loopback)
        if parsed.scheme == "http" and not plain_allowed:
            raise TargetRefused(
                f"https is required for {profile.value} recipients (plain http only to "
                "loopback, in local development)"
            )
        address = _literal(parsed.host)
        if address is not None:  # else a name: its addresses are checked when it is resolved
            self.check_address(address)
        return parsed

    def check_addresses(self, addresses: Iterable[IPAddress]) -> None:
        """Every address a name resolved to must be allowed: one bad answer refuses the name
        (else an attacker's DNS could mix a metadata address in with a public one)."""
        for address in addresses:
            self.check_address(address)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host``, in the resolver's order, each once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[IPAddress, None] = {}
    for *_, sockaddr in infos:
        found[ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(found)


async def check_target(url: str, profile: Profile, policy: TargetPolicy) -> str:
    """``url`` if the policy allows it for a recipient of ``profile``, else
    :class:`TargetRefused` with the reason. A name is looked up now and its addresses checked;
    one that does not resolve (yet) passes, since every connection checks again."""
    parsed = policy.check_url(url, profile)
    if _literal(parsed.host) is not None:
        return url
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            addresses = await resolve(parsed.host, parsed.port or 443)
    except (OSError, TimeoutError):
        return url
    policy.check_addresses(addresses)
    return url


class PolicyResolver(AbstractResolver):
    """Resolves a webhook host and refuses it unless every address it resolves to is allowed;
    aiohttp then connects to one of exactly these addresses (address literals never reach a
    resolver: :meth:`TargetPolicy.check_url` has checked those)."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        self.policy.check_addresses(ip_address(r["host"].split("%", 1)[0]) for r in found)
        return found

    async def close(self) -> None:
        await self._resolver.close()


@dataclass(frozen=True, slots=True)
class Answer:
    """What notify keeps of a receiver's answer: the status line, ``Retry-After`` and at most
    ``webhook_max_response_bytes`` of the body."""

    status: int
    reason: str
    retry_after: str | None
    body: bytes


class WebhookClient:
    """The client notify sends webhooks with: aiohttp's pooled keep-alive connections (per
    endpoint, reused across deliveries) under the target policy: the URL checked per request
    with the recipient's profile, each resolved address per connection, no redirects, no proxy
    from the environment, the answer capped. Made inside the running event loop."""

    def __init__(self, policy: TargetPolicy, *, max_response_bytes: int) -> None:
        self.policy = policy
        self.max_response_bytes = max_response_bytes
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=PolicyResolver(policy)),
            trust_env=False,
            auto_decompress=False,
        )

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: dict[str, str],
        profile: Profile,
        timeout: float,  # noqa: ASYNC109 - per phase: connect, and each read
    ) -> Answer:
        self.policy.check_url(url, profile)
        async with self.session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
        ) as response:
            # What is left unread closes the connection instead of returning it to the pool.
            kept = await response.content.read(self.max_response_bytes)
            return Answer(
                response.status, response.reason or "", response.headers.get("retry-after"), kept
            )

    async def aclose(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def webhook_client(settings: Settings, config: NotifySettings) -> WebhookClient:
    """The webhook client of these settings' policy."""
    return WebhookClient(
        TargetPolicy.of(settings, config), max_response_bytes=config.webhook_max_response_bytes
    )
