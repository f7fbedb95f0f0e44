"""Bearer credentials of the platform: partner API keys (``vh_``) and staff tokens (``vs_``).

A credential reads ``<prefix>_<id>_<secret>``: the id finds the row, the secret is checked
against its SHA-256 in constant time. Secrets are 256 random bits, so a plain hash is enough
(no password stretching) and the database never holds a usable credential; it is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issued:
    token_id: str
    token: str
    """Shown to the user once; never stored."""
    digest: bytes
    """What is stored."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def issue(prefix: str) -> Issued:
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return Issued(token_id, f"{prefix}_{token_id}_{secret}", _digest(secret))


def parse(prefix: str, token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed credential, else None."""
    match = re.fullmatch(rf"{re.escape(prefix)}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})", token)
    return (match[1], match[2]) if match else None


def verify(secret: str, stored: bytes | None) -> bool:
    """Whether ``secret`` matches the stored digest. Hashes and compares even without a
    stored digest, so timing does not tell which ids exist."""
    ok = hmac.compare_digest(_digest(secret), stored if stored is not None else b"\0" * 32)
    return ok and stored is not None
