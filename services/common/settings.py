"""Settings shared by every service, read from environment variables (pydantic-settings).

Every default below is the local development set-up that `make up` starts; each is
overridable by the environment variable of the same name in upper case (see README).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["intake", "triage", "notify", "analytics"]
SERVICES: tuple[ServiceName, ...] = ("intake", "triage", "notify", "analytics")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Comma-separated Kafka bootstrap servers."
    )
    database_url: SecretStr = Field(
        SecretStr("postgresql://veilig@localhost:54320/veilig"),
        description="PostgreSQL DSN; a secret because production DSNs carry a password.",
    )
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (isolates tests and parallel stacks)."
    )
    consumer_group_prefix: str = Field("veilig", description="Prefix of consumer-group ids.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor of topics.")
    kafka_min_insync_replicas: int = Field(1, ge=1, description="min.insync.replicas of topics.")
    kafka_linger_ms: int = Field(5, ge=0, description="Producer linger: batches small sends.")
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

    http_host: str = Field("127.0.0.1", description="Interface the HTTP endpoints bind to.")
    intake_port: int = 8081
    triage_port: int = 8082
    notify_port: int = 8083
    analytics_port: int = 8084

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

    def port_of(self, service: ServiceName) -> int:
        return int(getattr(self, f"{service}_port"))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group_id(self, service: ServiceName, purpose: str = "main") -> str:
        return f"{self.consumer_group_prefix}.{self.topic_prefix}{service}.{purpose}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
