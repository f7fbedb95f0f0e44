"""Sealing of personal data (reporter contact details) with keys from configuration.

Reporter contact is sealed by intake before it is stored or published (Fernet: AES-128-CBC +
HMAC-SHA256, with a timestamp) and opened only where a ``full``-profile recipient needs it
(notify). Kafka, the outbox and every database hold ciphertext only. Keys rotate with
``MultiFernet``: the first key seals, all keys open. Dropping a key older than the retention
period makes what it sealed unreadable everywhere at once (crypto-shredding), which is how
personal data is purged from an append-only event log.

Keys come from ``PII_KEYS`` (comma-separated, newest first) or the key file
``PII_KEY_FILE``; for a local run a key file is created on first use. Keys are never logged.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)

DEFAULT_KEY_FILE = Path(".run/secrets/pii.keys")


class SealError(ValueError):
    pass


def _load_keys() -> list[bytes]:
    env = os.environ.get("PII_KEYS", "").strip()
    if env:
        return [k.strip().encode() for k in env.split(",") if k.strip()]
    path = Path(os.environ.get("PII_KEY_FILE", str(DEFAULT_KEY_FILE)))
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


def seal(plaintext: str) -> str:
    return _box().encrypt(plaintext.encode()).decode()


def open_sealed(token: str) -> str:
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # Also what a purged (shredded) key looks like: the data is gone by design.
        raise SealError("sealed data cannot be opened with the configured keys") from exc
