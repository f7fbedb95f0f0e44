"""The recipients registry: configuration (``recipients.yaml``) plus channels (database).

The taxonomy owns the recipient codes, names and disclosure profiles. The YAML adds, per
recipient kind, the default message format, whether it acknowledges, and its escalation chain;
it must name every kind of the taxonomy, so a new recipient cannot be forgotten here.

Channels are per deployment and hold secrets, so they live in the ``channels`` table, written
by ``veilig recipients set``. Lookup for a concrete code such as ``politie.wijkagent.WK039201``:
its own row if there is one, else the row of its kind (``politie.wijkagent.{wijk}``). Webhook
secrets are sealed with the secrets key (:mod:`services.common.pii`) and never printed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Literal, Self

import asyncpg
import yaml
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from schemas.events import NotificationChannel
from schemas.taxonomy import Profile, RecipientRule, field_path, taxonomy
from services.common.pii import open_secret, seal_secret
from services.common.settings import get_settings
from services.common.signalled import SignalledCache
from services.notify.settings import DEFAULT_REGISTRY, NotifySettings
from services.notify.targets import TargetPolicy, TargetRefused, check_target
from services.notify.webhooks import check_secret

Format = Literal["json", "cap"]


class RegistryError(ValueError):
    """The registry file or a channel setting is invalid; the text says which and why."""


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Format = "json"
    acknowledges: bool
    escalation: tuple[str, ...] = ()


class Registry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    recipients: dict[str, Entry]

    @model_validator(mode="after")
    def _matches_the_taxonomy(self) -> Self:
        kinds = {kind.code: kind for kind in taxonomy().recipients}
        problems = [
            f"{code}: not a recipient kind of the taxonomy"
            for code in self.recipients
            if code not in kinds
        ]
        problems += [f"{code}: missing" for code in kinds if code not in self.recipients]
        for code, entry in self.recipients.items():
            for step in entry.escalation:
                if not any(kind.matches(step) for kind in kinds.values()):
                    problems.append(f"{code}: escalation step {step!r} is not a recipient")
            if code in kinds and entry.format == "cap" and kinds[code].profile is not Profile.FULL:
                problems.append(f"{code}: cap carries the full picture; the profile is not full")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def entry(self, code: str) -> Entry:
        """The entry of a concrete code's kind."""
        return self.recipients[taxonomy().recipient(code).code]

    def chain(self, code: str, **values: str | None) -> tuple[str, ...]:
        """The escalation chain of ``code`` with placeholders filled from ``values`` (wijk,
        buurt, partner); steps that cannot be filled are left out."""
        steps = (RecipientRule(code=step).render(**values) for step in self.entry(code).escalation)
        return tuple(step for step in steps if step is not None)


def load_registry(path: Path = DEFAULT_REGISTRY) -> Registry:
    try:
        return Registry.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise RegistryError(f"invalid recipients registry {path}: {exc}") from exc
    except ValidationError as exc:
        detail = "; ".join(
            f"{field_path(e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise RegistryError(f"invalid recipients registry {path}: {detail}") from exc


@cache
def registry() -> Registry:
    """The project's registry, loaded and validated once per process."""
    return load_registry()


def kind_code(code: str) -> str:
    """The taxonomy kind of ``code`` (itself for a kind code such as ``brandweer``)."""
    try:
        return taxonomy().recipient(code).code
    except KeyError as exc:
        raise RegistryError(exc.args[0]) from None


@dataclass(frozen=True, slots=True)
class Channel:
    """How one recipient (or every recipient of a kind) is reached."""

    code: str
    webhook_url: str | None
    webhook_format: Format
    secrets: tuple[str, ...]
    email: str | None
    webhook_disabled_at: datetime | None
    email_disabled_at: datetime | None
    updated_at: datetime

    def usable(self, channel: NotificationChannel) -> bool:
        """Configured and not disabled (CAP travels over the webhook)."""
        if channel == "email":
            return self.email is not None and self.email_disabled_at is None
        return self.webhook_url is not None and self.webhook_disabled_at is None

    def route(self, profile: Profile) -> NotificationChannel | None:
        """The channel a new message goes out on: the webhook unless it was disabled, else
        e-mail."""
        if self.usable("webhook"):
            # CAP shows the full picture; a lesser profile gets the minimised JSON instead.
            return "cap" if self.webhook_format == "cap" and profile is Profile.FULL else "webhook"
        return "email" if self.usable("email") else None


def _channel(row: asyncpg.Record) -> Channel:
    sealed = row["secrets_sealed"]
    return Channel(
        code=row["code"],
        webhook_url=row["webhook_url"],
        webhook_format=row["webhook_format"],
        secrets=tuple(json.loads(open_secret(sealed))) if sealed else (),
        email=row["email"],
        webhook_disabled_at=row["webhook_disabled_at"],
        email_disabled_at=row["email_disabled_at"],
        updated_at=row["updated_at"],
    )


async def find_channel(conn: asyncpg.Connection | asyncpg.Pool, code: str) -> Channel | None:
    """The channel of a concrete recipient code: its own, else its kind's."""
    row = await conn.fetchrow(
        "SELECT * FROM channels WHERE code = ANY($1::text[]) ORDER BY code = $2 DESC LIMIT 1",
        [code, kind_code(code)],
        code,
    )
    return _channel(row) if row else None


CHANNELS_CHANGED = "notify_channels"
"""NOTIFY channel a trigger on ``channels`` signals every change on (migration 0008)."""


class ChannelCache(SignalledCache[str, Channel]):
    """Channels with their secrets opened, looked up once per recipient instead of once per
    message and attempt. Any change to ``channels`` (``veilig recipients set|remove``, a 410
    disabling an endpoint) is signalled by a trigger (``CHANNELS_CHANGED``) and empties the
    cache of every notify process at once. A recipient without a channel is kept too."""

    def __init__(self) -> None:
        super().__init__(CHANNELS_CHANGED, keep_missing=True)

    async def get(self, conn: asyncpg.Connection | asyncpg.Pool, code: str) -> Channel | None:
        return await self.lookup(code, partial(find_channel, conn, code))


async def list_channels(conn: asyncpg.Connection) -> list[Channel]:
    return [_channel(row) for row in await conn.fetch("SELECT * FROM channels ORDER BY code")]


def _check_secret(secret: str) -> str:
    try:
        return check_secret(secret)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None


async def _check_url(url: str, code: str, policy: TargetPolicy | None) -> str:
    if policy is None:
        policy = TargetPolicy.of(get_settings(), NotifySettings())
    try:
        return await check_target(url, taxonomy().recipient_profile(code), policy)
    except TargetRefused as exc:
        raise RegistryError(f"webhook URL {url!r} refused: {exc}") from None


def _check_email(address: str) -> str:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RegistryError(f"e-mail address {address!r}: {exc}") from None


def _check_code(code: str) -> str:
    kind = kind_code(code)
    # A kind code serves all its recipients; a concrete code must fill every placeholder.
    if "{" in code and code != kind:
        raise RegistryError(f"{code!r}: use the kind {kind!r} or a concrete code")
    return code


async def set_channel(
    conn: asyncpg.Connection,
    code: str,
    *,
    webhook_url: str | None = None,
    secrets: list[str] | None = None,
    webhook_format: Format | None = None,
    email: str | None = None,
    policy: TargetPolicy | None = None,
) -> Channel:
    """Create or change the channel of ``code``; options left None keep their value, given
    secrets replace all earlier ones (several at once: rotation). Setting a channel enables it
    again after an endpoint reported itself gone. A webhook URL must pass the target
    ``policy`` (:mod:`services.notify.targets`; by default the one the environment's settings
    make)."""
    _check_code(code)
    if webhook_format == "cap" and taxonomy().recipient_profile(code) is not Profile.FULL:
        raise RegistryError(f"{code}: CAP is for full-profile recipients (police, fire brigade)")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM channels WHERE code = $1 FOR UPDATE", code)
        old = _channel(row) if row else None
        url = (
            await _check_url(webhook_url, code, policy)
            if webhook_url
            else (old.webhook_url if old else None)
        )
        keys = [_check_secret(s) for s in secrets] if secrets else list(old.secrets if old else ())
        address = _check_email(email) if email else (old.email if old else None)
        fmt = webhook_format or (old.webhook_format if old else registry().entry(code).format)
        if url is None and address is None:
            raise RegistryError(f"{code}: give a webhook URL or an e-mail address")
        if url is not None and not keys:
            raise RegistryError(f"{code}: a webhook needs at least one whsec_ secret")
        new = await conn.fetchrow(
            "INSERT INTO channels (code, webhook_url, webhook_format, secrets_sealed, email) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO UPDATE SET "
            "webhook_url = $2, webhook_format = $3, secrets_sealed = $4, email = $5, "
            "webhook_disabled_at = CASE WHEN $6 THEN NULL ELSE channels.webhook_disabled_at END, "
            "email_disabled_at = CASE WHEN $7 THEN NULL ELSE channels.email_disabled_at END, "
            "updated_at = now() RETURNING *",
            code,
            url,
            fmt,
            seal_secret(json.dumps(keys)) if keys else None,
            address,
            webhook_url is not None or bool(secrets),
            email is not None,
        )
    return _channel(new)


async def remove_channel(conn: asyncpg.Connection, code: str) -> bool:
    return await conn.fetchval("DELETE FROM channels WHERE code = $1 RETURNING true", code) or False


async def disable_channel(
    conn: asyncpg.Connection, code: str, channel: NotificationChannel
) -> None:
    """The endpoint said it is gone: stop using it until an operator sets it again."""
    column = "email_disabled_at" if channel == "email" else "webhook_disabled_at"
    await conn.execute(
        f"UPDATE channels SET {column} = now(), updated_at = now() WHERE code = $1",  # noqa: S608
        code,
    )
