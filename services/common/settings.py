"""Settings shared by every service, read from environment variables (pydantic-settings).

Every default below is the local development set-up that `make up` starts; each is
overridable by the environment variable of the same name in upper case (see README).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def comma_separated(value: object) -> object:
    """A before-validator for a list setting: ``"a, b"`` from the environment is (a, b)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


ServiceName = Literal["intake", "triage", "notify", "analytics"]
Lane = Literal["all", "main", "urgent"]
"""Which priority lane a process of triage or notify works (decision 0006): ``urgent`` only
the P1/P2 lane (its consumer, its deliveries, its outbox rows), ``main`` everything else,
``all`` both in one process."""
SERVICES: tuple[ServiceName, ...] = ("intake", "triage", "notify", "analytics")
LANED: tuple[ServiceName, ...] = ("intake", "triage", "notify")
"""The services whose urgent lane runs in a process of its own where ``LANE=urgent`` (intake's
relays the lane's rows): `make run`, Kubernetes and Compose give it one."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Comma-separated Kafka bootstrap servers."
    )
    database_url: SecretStr = Field(
        SecretStr("postgresql://veilig@localhost:54320/veilig"),
        description="PostgreSQL DSN; a secret because production DSNs carry a password.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How the services reach Kafka: SASL_SSL for a secured cluster, SASL_PLAINTEXT "
        "for the local broker `make up` starts (docs/decisions/0011).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="The SASL mechanism, with a SASL security protocol."
    )
    kafka_sasl_username: str | None = Field(None, description="This service's Kafka principal.")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="Its password (or KAFKA_SASL_PASSWORD_FILE)."
    )
    kafka_sasl_password_file: Path | None = Field(
        None, description="A file holding the password (a mounted secret); read at start."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA certificate(s) that signed the brokers' certificates (SSL/SASL_SSL)."
    )
    kafka_credentials_dir: Path | None = Field(
        None,
        description="Local development: a folder with one password file per principal "
        "(veilig-intake, …), from which `veilig run` gives each service its own; `make up` "
        "writes it.",
    )
    kafka_metadata_max_age_seconds: float = Field(
        30.0,
        gt=0,
        description="How often clients refresh the cluster's metadata: how soon intake starts "
        "reading the submission topic of a partner just given Kafka access.",
    )
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (isolates tests and parallel stacks)."
    )
    consumer_group_prefix: str = Field("veilig", description="Prefix of consumer-group ids.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor of topics.")
    kafka_min_insync_replicas: int = Field(1, ge=1, description="min.insync.replicas of topics.")
    kafka_linger_ms: int = Field(5, ge=0, description="Producer linger: batches small sends.")
    kafka_commit_interval_ms: int = Field(
        500,
        ge=0,
        description="How long a consumer's handled offsets wait to be committed together "
        "(0: after every batch); the inbox makes a record read again after a crash harmless.",
    )
    kafka_background_fetch_wait_ms: int = Field(
        500,
        ge=0,
        le=30_000,
        description="How long the broker gathers records for a reader on no report's way to "
        "its recipients (analytics, the public history, pattern detection, acknowledgements) "
        "before it answers: such a reader handles that long's worth in one batch (what it shows "
        "lags by as much; 0: as promptly as the others).",
    )
    dlq_max_attempts: int = Field(
        3, ge=1, description="Attempts at one message before it goes to the dead-letter topic."
    )
    outbox_stuck_seconds: float = Field(
        60.0,
        gt=0,
        description="Age of the oldest unpublished outbox row beyond which the service is "
        "not ready (its relay is stuck or Kafka is away).",
    )
    infra_retry_max_seconds: float = Field(
        30.0,
        gt=0,
        description="Longest wait between tries while PostgreSQL or Kafka is unavailable.",
    )

    local_development: bool = Field(
        False,
        description="A developer's machine (`make run`, tests, bench, chaos): notify may send "
        "webhooks over plain http to loopback, /docs is served, a missing PII key is made. "
        "Off everywhere else.",
    )

    http_host: str = Field("127.0.0.1", description="Interface the HTTP endpoints bind to.")
    intake_port: int = 8081
    triage_port: int = 8082
    notify_port: int = 8083
    analytics_port: int = 8084
    metrics_host: str = Field(
        "127.0.0.1",
        description="Interface /metrics binds to, on a port of its own: loopback, unless a "
        "scraper elsewhere must reach it (a container: all interfaces, the port in no Service).",
    )
    intake_metrics_port: int = 9181
    triage_metrics_port: int = 9182
    notify_metrics_port: int = 9183
    analytics_metrics_port: int = 9184

    console_idle_minutes: float = Field(
        30.0, gt=0, description="A console session unused this long is over (sign in again)."
    )
    console_session_hours: float = Field(
        12.0, gt=0, description="A console session ends this long after sign-in, however used."
    )
    console_link_minutes: float = Field(
        10.0, gt=0, description="How long a one-time console sign-in link may be used."
    )

    personal_data_retention_days: int = Field(
        365,
        ge=1,
        description="How long after it was received a report's personal data (reporter "
        "contact, description, exact location) is kept; then it is purged (docs/decisions/0010).",
    )

    lane: Lane = Field(
        "all",
        description="The priority lane this process works: all, main (everything but the "
        "urgent lane) or urgent (only P1/P2: a process of its own, so no bulk work in the "
        "same process can hold a fire up; decision 0006).",
    )

    log_level: str = Field("INFO", description="Python log level of the services.")
    log_format: Literal["json", "text"] = Field("json", description="Log line format.")
    shutdown_grace_seconds: float = Field(
        15.0, gt=0, description="How long in-flight messages may take on SIGTERM."
    )

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap servers as a list: FastStream wraps a plain string in a one-item list,
        and "a:9092,b:9092" then reaches aiokafka as one unresolvable host."""
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def works_main(self) -> bool:
        return self.lane != "urgent"

    @property
    def works_urgent(self) -> bool:
        return self.lane != "main"

    def port_of(self, service: ServiceName) -> int:
        return int(getattr(self, f"{service}_port"))

    def metrics_port_of(self, service: ServiceName) -> int:
        return int(getattr(self, f"{service}_metrics_port"))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group_id(self, service: ServiceName, purpose: str = "main") -> str:
        return f"{self.consumer_group_prefix}.{self.topic_prefix}{service}.{purpose}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
