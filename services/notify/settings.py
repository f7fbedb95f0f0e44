"""Settings of the notify service only, from ``NOTIFY_*`` environment variables.

The shared settings (broker, database, ports) stay in :mod:`services.common.settings`; these
tune delivery, escalation and the channels. Every default is production-minded; tests shorten
the timers here (``NOTIFY_ESCALATION_TIME_SCALE``, ``NOTIFY_RETRY_BASE_SECONDS``) instead of
sleeping.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Self

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.settings import Settings, comma_separated
from services.notify.retry import RetryPolicy
from services.notify.targets import is_loopback_name

DEFAULT_REGISTRY = Path(__file__).parent / "recipients.yaml"


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NOTIFY_", env_file=None, extra="ignore", frozen=True
    )

    retry_base_seconds: float = Field(
        5.0, gt=0, description="Backoff after the first failed attempt; doubles per attempt."
    )
    retry_max_seconds: float = Field(600.0, gt=0, description="Longest wait between attempts.")
    retry_max_attempts: int = Field(
        10, ge=1, description="Attempts before a delivery is failed for good."
    )
    http_timeout_seconds: float = Field(
        10.0, gt=0, description="Per-request timeout of a webhook POST (connect, read, write)."
    )
    lease_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a claimed delivery belongs to its worker; after a crash another "
        "worker takes it over once this runs out. Must exceed the HTTP and SMTP timeouts.",
    )
    worker_concurrency: int = Field(64, ge=2, description="Deliveries in flight at once.")
    urgent_reserved: int = Field(
        8,
        ge=1,
        description="Of the deliveries in flight, slots only P1/P2 may take: a backlog of "
        "P3/P4 never fills the worker.",
    )
    due_stuck_seconds: float = Field(
        120.0,
        gt=0,
        description="How long a due delivery may wait to be claimed before notify is not ready "
        "(its worker is stuck or far behind).",
    )
    poll_seconds: float = Field(
        1.0, gt=0, description="Fallback poll for due retries and timers (NOTIFY wakes sooner)."
    )
    escalation_time_scale: float = Field(
        1.0,
        gt=0,
        description="Factor on every acknowledgement window (1 = the taxonomy's windows; tests "
        "and demos shorten them, e.g. 0.01 makes P1's 2 minutes 1.2 seconds).",
    )
    escalation_max_levels: int = Field(
        3, ge=1, description="Pages per unacknowledged recipient before escalation gives up."
    )
    public_base_url: str | None = Field(
        None,
        description="Base URL of notify's acknowledgement links; default "
        "http://<HTTP_HOST>:<NOTIFY_PORT>.",
    )
    smtp_host: str = Field("localhost", description="SMTP relay for e-mail recipients.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(
        True,
        description="Require STARTTLS on the SMTP connection; may be switched off only for a "
        "relay on loopback.",
    )
    smtp_username: str | None = Field(None, description="SMTP login, if the relay wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_timeout_seconds: float = Field(10.0, gt=0, description="Per SMTP operation.")
    mail_from: str = Field("Veilig Haarlem <veilig@haarlem.nl>", description="E-mail sender.")
    mail_subject_prefix: str = Field("[Veilig Haarlem]", description="E-mail subject prefix.")
    webhook_allowed_networks: Annotated[
        tuple[IPv4Network | IPv6Network, ...], NoDecode, BeforeValidator(comma_separated)
    ] = Field(
        (),
        description="Comma-separated networks (CIDR) webhooks may reach although they are "
        "loopback, link-local or private (an internal receiver); everything else must be public.",
    )
    webhook_max_response_bytes: int = Field(
        65_536, ge=0, description="Bytes of a receiver's answer read at most; the rest is dropped."
    )
    registry_file: Path = Field(
        DEFAULT_REGISTRY, description="Recipients registry: formats and escalation chains."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.smtp_starttls and not is_loopback_name(self.smtp_host):
            raise ValueError(
                f"smtp_starttls may be off only for a relay on loopback, not {self.smtp_host!r}: "
                "mail carries personal data"
            )
        if self.retry_base_seconds > self.retry_max_seconds:
            raise ValueError("retry_base_seconds must not exceed retry_max_seconds")
        if self.urgent_reserved >= self.worker_concurrency:
            raise ValueError("urgent_reserved must leave room for P3/P4 in worker_concurrency")
        longest = max(self.http_timeout_seconds, self.smtp_timeout_seconds)
        if self.lease_seconds <= longest:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds}) must exceed the longest send timeout "
                f"({longest}): else a slow send is taken over and sent twice"
            )
        return self

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_seconds=self.retry_base_seconds,
            max_seconds=self.retry_max_seconds,
            max_attempts=self.retry_max_attempts,
        )

    def base_url(self, settings: Settings) -> str:
        return (
            self.public_base_url or f"http://{settings.http_host}:{settings.notify_port}"
        ).rstrip("/")
