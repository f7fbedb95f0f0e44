"""Sealing of personal data (reporter contact details) with keys from configuration.

Reporter contact is sealed by intake before it is stored or published (Fernet: AES-128-CBC +
HMAC-SHA256, with a timestamp) and opened only where a ``full``-profile recipient needs it
(notify). Kafka, the outbox and every database hold ciphertext only. Keys rotate with
``MultiFernet``: the first key seals, all keys open. Dropping a key older than the retention
period makes what it sealed unreadable everywhere at once (crypto-shredding), which is how
personal data is purged from an append-only event log.

Keys come from ``PII_KEYS`` (comma-separated, newest first) or the key file
``PII_KEY_FILE``; only in local development (``LOCAL_DEVELOPMENT``) is a key file created on
first use. Anywhere else a host without keys would seal with a key of its own that no other
host can open: the services that handle personal data refuse to start instead
(:func:`require_keys`). Keys are never logged.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.common.settings import get_settings

log = logging.getLogger(__name__)

DEFAULT_KEY_FILE = Path(".run/secrets/pii.keys")


class SealError(ValueError):
    pass


def _load_keys() -> list[bytes]:
    env = os.environ.get("PII_KEYS", "").strip()
    if env:
        return [k.strip().encode() for k in env.split(",") if k.strip()]
    path = Path(os.environ.get("PII_KEY_FILE", str(DEFAULT_KEY_FILE)))
    if not path.exists() and not get_settings().local_development:
        raise SealError(
            f"no PII key: set PII_KEYS (Fernet keys, comma-separated, newest first) or "
            f"PII_KEY_FILE (now {path}, which does not exist); every host needs the same keys. "
            "Only local development (LOCAL_DEVELOPMENT=true) makes a key of its own"
        )
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key() + b"\n")
        log.warning("created a new local PII key file", extra={"path": str(path)})
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


@lru_cache
def _box() -> MultiFernet:
    keys = _load_keys()
    if not keys:
        raise SealError("no PII key configured (PII_KEYS or PII_KEY_FILE)")
    return MultiFernet([Fernet(k) for k in keys])


def require_keys() -> None:
    """Load the keys now: :class:`SealError` says what is missing (at a service's start)."""
    _box()


def seal(plaintext: str) -> str:
    return _box().encrypt(plaintext.encode()).decode()


def open_sealed(token: str) -> str:
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # Also what a purged (shredded) key looks like: the data is gone by design.
        raise SealError("sealed data cannot be opened with the configured keys") from exc
