"""The two key rings: personal data with the PII keys, channel secrets with their own."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from services.common import pii
from services.common.settings import get_settings


def _fresh() -> None:
    get_settings.cache_clear()
    pii._forget_keys()


@pytest.fixture
def rings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Each test sets the rings it needs; the caches are emptied before and after."""
    monkeypatch.setenv("PII_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("SECRETS_KEYS", Fernet.generate_key().decode())
    _fresh()
    yield monkeypatch
    monkeypatch.undo()
    _fresh()


def test_a_secret_is_not_sealed_with_the_pii_key(rings: pytest.MonkeyPatch) -> None:
    token = pii.seal_secret('["whsec_abc"]')
    assert pii.open_secret(token) == '["whsec_abc"]'
    with pytest.raises(pii.SealError):
        pii.open_sealed(token)
    # Retiring every PII key (shredding personal data) leaves the channel's secret readable.
    rings.setenv("PII_KEYS", Fernet.generate_key().decode())
    _fresh()
    assert pii.open_secret(token) == '["whsec_abc"]'


def test_a_secret_sealed_with_the_pii_key_opens_until_resealed(
    rings: pytest.MonkeyPatch,
) -> None:
    old = pii.seal('["whsec_old"]')  # how secrets were sealed before they had a key
    assert pii.open_secret(old) == '["whsec_old"]'
    moved = pii.reseal_secret(old)
    assert moved is not None and moved != old
    assert pii.open_secret(moved) == '["whsec_old"]'
    with pytest.raises(pii.SealError):
        pii.open_sealed(moved)
    assert pii.reseal_secret(moved) is None  # once is enough: a second run changes nothing


def test_a_new_secrets_key_first_moves_secrets_to_it(rings: pytest.MonkeyPatch) -> None:
    older = Fernet.generate_key().decode()
    rings.setenv("SECRETS_KEYS", older)
    _fresh()
    token = pii.seal_secret('["whsec_x"]')
    rings.setenv("SECRETS_KEYS", f"{Fernet.generate_key().decode()},{older}")
    _fresh()
    moved = pii.reseal_secret(token)
    assert moved is not None
    rings.setenv("SECRETS_KEYS", pii.load_keys(pii.SECRETS)[0].decode())  # the old key dropped
    _fresh()
    assert pii.open_secret(moved) == '["whsec_x"]'


def test_neither_key_opens_it(rings: pytest.MonkeyPatch) -> None:
    foreign = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    with pytest.raises(pii.SealError, match="secrets or PII keys"):
        pii.open_secret(foreign)


def test_without_a_secrets_key_outside_development_it_says_so(
    rings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rings.delenv("SECRETS_KEYS")
    rings.setenv("SECRETS_KEY_FILE", str(tmp_path / "no-such.keys"))
    rings.setenv("LOCAL_DEVELOPMENT", "false")
    _fresh()
    with pytest.raises(pii.SealError, match="no secrets key: set SECRETS_KEYS") as raised:
        pii.require_keys(pii.PII, pii.SECRETS)
    assert "SECRETS_KEY_FILE" in str(raised.value)
    assert not (tmp_path / "no-such.keys").exists()


def test_in_local_development_a_key_file_is_made_once(
    rings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "secrets" / "secrets.keys"
    rings.delenv("SECRETS_KEYS")
    rings.setenv("SECRETS_KEY_FILE", str(path))
    rings.setenv("LOCAL_DEVELOPMENT", "true")
    _fresh()
    token = pii.seal_secret("s")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(pii.load_keys(pii.SECRETS)) == 1  # a second load keeps the file's key
    _fresh()
    assert pii.open_secret(token) == "s"
    assert [p.name for p in path.parent.iterdir()] == ["secrets.keys"]  # no temporary left


def test_rotating_a_key_file_puts_a_new_key_first_and_keeps_the_old(
    rings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "pii.keys"
    old = Fernet.generate_key()
    path.write_bytes(old + b"\n")
    rings.delenv("PII_KEYS")
    rings.setenv("PII_KEY_FILE", str(path))
    _fresh()
    before = pii.seal("Anna")
    new = pii.add_first_key(pii.PII)
    assert new.written_to == path and new.keys[1:] == [old]
    assert pii.load_keys(pii.PII) == new.keys
    assert pii.key_ids(pii.PII) == [pii.fingerprint(k) for k in new.keys]
    assert pii.open_sealed(before) == "Anna"
    moved = pii.reseal(before)
    assert moved is not None and pii.reseal(moved) is None
    Fernet(new.keys[0]).decrypt(moved.encode())  # the new key alone opens it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_running_process_reads_a_rotated_key_file_when_it_meets_the_new_key(
    rings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "pii.keys"
    path.write_bytes(Fernet.generate_key() + b"\n")
    rings.delenv("PII_KEYS")
    rings.setenv("PII_KEY_FILE", str(path))
    _fresh()
    pii.require_keys(pii.PII)  # a service read its keys at start
    newer = Fernet.generate_key()
    path.write_bytes(newer + b"\n" + path.read_bytes())  # another process rotated
    sealed_elsewhere = Fernet(newer).encrypt(b"Bram").decode()
    assert pii.open_sealed(sealed_elsewhere) == "Bram"


def test_with_keys_in_the_environment_rotation_only_proposes_the_list(
    rings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rings.setenv("PII_KEY_FILE", str(tmp_path / "untouched.keys"))
    current = pii.load_keys(pii.PII)
    new = pii.add_first_key(pii.PII)
    assert new.written_to is None and new.keys[1:] == current
    assert pii.load_keys(pii.PII) == current  # nothing changes until the operator sets it
    assert not (tmp_path / "untouched.keys").exists()


def test_a_malformed_key_is_named_by_its_setting_not_shown(rings: pytest.MonkeyPatch) -> None:
    rings.setenv("SECRETS_KEYS", "not-a-fernet-key")
    _fresh()
    with pytest.raises(pii.SealError, match="not a Fernet key") as raised:
        pii.require_keys(pii.PII, pii.SECRETS)
    assert "SECRETS_KEYS" in str(raised.value) and "not-a-fernet-key" not in str(raised.value)
