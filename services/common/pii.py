"""Sealing of personal data (reporter contact details) and of channel secrets, with keys from
configuration.

Reporter contact is sealed by intake before it is stored or published (Fernet: AES-128-CBC +
HMAC-SHA256, with a timestamp) and opened only where a ``full``-profile recipient needs it
(notify). Kafka, the outbox and every database hold ciphertext only. Keys rotate with
``MultiFernet``: the first key seals, all keys open. Dropping a key older than the retention
period makes what it sealed unreadable everywhere at once (crypto-shredding), which is how
personal data is purged from an append-only event log. What a service dead-letters is sealed
with the PII keys too (services/common/dlq.py), so every service needs them.

Webhook and callback secrets (notify's channels, intake's status callbacks) are sealed with a
key ring of their own (:data:`SECRETS`), so that retiring a PII key to shred personal data never
breaks a channel. A secret sealed with the PII keys before they had their own key still opens
(:func:`open_secret` falls back to them) until ``veilig keys secrets reseal`` moves it over.

Each ring comes from its ``*_KEYS`` variable (comma-separated, newest first) or its key file
(``*_KEY_FILE``); only in local development (``LOCAL_DEVELOPMENT``) is a key file created on
first use. Anywhere else a host without keys would seal with a key of its own that no other
host can open: no service starts without the PII keys, and intake and notify not without the
secrets key either (:func:`require_keys`). Keys are never logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.common.settings import get_settings

log = logging.getLogger(__name__)


class SealError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Where one set of Fernet keys comes from: ``<VAR>_KEYS`` or the file ``<VAR>_KEY_FILE``."""

    what: str  # in messages: "PII", "secrets"
    variable: str  # "PII" -> PII_KEYS, PII_KEY_FILE
    default_file: Path

    @property
    def keys_variable(self) -> str:
        return f"{self.variable}_KEYS"

    @property
    def file_variable(self) -> str:
        return f"{self.variable}_KEY_FILE"

    def key_file(self) -> Path:
        return Path(os.environ.get(self.file_variable, str(self.default_file)))


PII = KeyRing("PII", "PII", Path(".run/secrets/pii.keys"))
SECRETS = KeyRing("secrets", "SECRETS", Path(".run/secrets/secrets.keys"))


def _write_key_file(path: Path, keys: list[bytes], *, replace: bool) -> bool:
    """Write ``keys`` (newest first) to ``path``, whole before it appears: a reader sees the
    old file or the new one, never a part. Without ``replace`` a file that exists wins (another
    process made one at the same moment): False then."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"".join(key + b"\n" for key in keys))
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return True


def load_keys(ring: KeyRing) -> list[bytes]:
    """The ring's keys, newest first (its key file made first in local development only)."""
    env = os.environ.get(ring.keys_variable, "").strip()
    if env:
        return [k.strip().encode() for k in env.split(",") if k.strip()]
    path = ring.key_file()
    if not path.exists() and not get_settings().local_development:
        raise SealError(
            f"no {ring.what} key: set {ring.keys_variable} (Fernet keys, comma-separated, "
            f"newest first) or {ring.file_variable} (now {path}, which does not exist); every "
            "host needs the same keys. Only local development (LOCAL_DEVELOPMENT=true) makes a "
            "key of its own"
        )
    if not path.exists() and _write_key_file(path, [Fernet.generate_key()], replace=False):
        log.warning("created a new local key file", extra={"path": str(path)})
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


@lru_cache
def _keys(ring: KeyRing) -> tuple[Fernet, ...]:
    keys = load_keys(ring)
    if not keys:
        raise SealError(
            f"no {ring.what} key configured ({ring.keys_variable} or {ring.file_variable})"
        )
    try:
        return tuple(Fernet(k) for k in keys)
    except ValueError:  # never say which or what: the message may reach a log
        raise SealError(
            f"a {ring.what} key is not a Fernet key (32 url-safe base64-encoded bytes) in "
            f"{ring.keys_variable} or {ring.file_variable}"
        ) from None


@lru_cache
def _box(ring: KeyRing) -> MultiFernet:
    return MultiFernet(list(_keys(ring)))


def _forget_keys() -> None:
    _keys.cache_clear()
    _box.cache_clear()


def require_keys(*rings: KeyRing) -> None:
    """Load ``rings`` now: :class:`SealError` says what is missing (at a service's start)."""
    for ring in rings:
        _box(ring)


def _open(ring: KeyRing, token: bytes) -> bytes:
    """Open ``token`` with ``ring``; :class:`InvalidToken` when none of its keys can. The keys
    are read again once first: `veilig keys pii rotate` may have put a new key in the key file
    since this process read it, and re-sealed data with it."""
    try:
        return _box(ring).decrypt(token)
    except InvalidToken:
        _forget_keys()
        return _box(ring).decrypt(token)


def _sealed_with_first(ring: KeyRing, token: str) -> bool:
    try:
        _keys(ring)[0].decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def seal_bytes(data: bytes) -> bytes:
    return _box(PII).encrypt(data)


def open_bytes(token: bytes) -> bytes:
    try:
        return _open(PII, token)
    except InvalidToken as exc:
        # Also what a purged (shredded) key looks like: the data is gone by design.
        raise SealError("sealed data cannot be opened with the configured keys") from exc


def seal(plaintext: str) -> str:
    return seal_bytes(plaintext.encode()).decode()


def open_sealed(token: str) -> str:
    return open_bytes(token.encode()).decode()


def reseal(token: str) -> str | None:
    """Personal data ``token`` sealed with the first PII key, or None when it already is."""
    return None if _sealed_with_first(PII, token) else seal(open_sealed(token))


def seal_secret(plaintext: str) -> str:
    return _box(SECRETS).encrypt(plaintext.encode()).decode()


def open_secret(token: str) -> str:
    """A channel secret, sealed with the secrets keys or (before it was re-sealed) the PII
    keys."""
    try:
        return _open(SECRETS, token.encode()).decode()
    except InvalidToken:
        pass
    try:
        return _open(PII, token.encode()).decode()
    except InvalidToken as exc:
        raise SealError(
            "a channel secret cannot be opened with the configured secrets or PII keys"
        ) from exc


def reseal_secret(token: str) -> str | None:
    """``token`` sealed with the first secrets key, or None when it already is."""
    return None if _sealed_with_first(SECRETS, token) else seal_secret(open_secret(token))


def fingerprint(key: bytes) -> str:
    """What names a key in output and audit: the start of its SHA-256 (never the key)."""
    return hashlib.sha256(key).hexdigest()[:12]


def key_ids(ring: KeyRing) -> list[str]:
    """The fingerprints of the ring's keys, newest first."""
    return [fingerprint(key) for key in load_keys(ring)]


@dataclass(frozen=True, slots=True)
class NewKey:
    keys: list[bytes]  # the new list, newest (the new key) first
    written_to: Path | None  # the key file it was written to; None: the environment holds them


def add_first_key(ring: KeyRing) -> NewKey:
    """A new key in front of the ring's keys. From a key file: written there (this process
    seals with it from now on). From ``<VAR>_KEYS`` in the environment: only returned, for
    the operator to set on every host."""
    keys = [Fernet.generate_key(), *load_keys(ring)]
    if os.environ.get(ring.keys_variable, "").strip():
        return NewKey(keys, None)
    path = ring.key_file()
    _write_key_file(path, keys, replace=True)
    _forget_keys()
    return NewKey(keys, path)
