"""What the benchmark points at and how long it runs.

Kafka and PostgreSQL come from the platform's own settings (``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL``, ``TOPIC_PREFIX``); the rest from ``BENCH_*`` variables, so that the same
harness measures a deployed platform (``veilig bench --no-start``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import Settings


class BenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_", extra="ignore")

    intake_url: str | None = Field(
        None, description="Base URL of the partner API; default http://HTTP_HOST:INTAKE_PORT."
    )
    partner: str = Field("bench", description="Partner code the reports come from.")
    partner_key: SecretStr | None = Field(
        None,
        description="API key of that partner; unset: the partner is created locally "
        "(with a limit no benchmark reaches) and its key kept in $RUN_DIR/bench/keys.json.",
    )
    deliveries_url: str | None = Field(
        None,
        description="/deliveries of a stand-in receiver that the platform's recipients point "
        "at; unset: the local stand-in's file $RUN_DIR/standins/webhooks.jsonl.",
    )
    out: Path = Field(Path("bench-results"), description="Where results go.")

    def intake(self, settings: Settings) -> str:
        return self.intake_url or f"http://{settings.http_host}:{settings.intake_port}"


@dataclass(frozen=True, slots=True)
class Profile:
    """How long each scenario runs; QUICK is a smoke run, FULL the one to quote."""

    name: str
    rates: tuple[int, ...]  # offered reports/s of the end-to-end steps, until one saturates
    step_seconds: float
    warm_up_rate: int  # scenario 3's warm-up step, shown but neither judged nor counted
    warm_up_seconds: float  # 0: none
    step_grace: float  # after a step: how long its last reports may take to arrive
    drain_seconds: float  # after the steps: how long the backlog may take to clear
    burst: int
    p1_window: float  # the P1s of the P1-in-a-burst scenario come at random moments within it
    wait_seconds: float  # how long a bulk (the burst, Kafka intake) may take to arrive
    intake_seconds: float  # each HTTP intake mode
    kafka_reports: int
    broker_records: int  # ProducerPerformance / ConsumerPerformance
    drain_deliveries: int  # notify's delivery worker alone (tools/bench/drain.py)


QUICK = Profile(
    name="quick",
    rates=(10, 50, 200),
    step_seconds=8,
    warm_up_rate=0,
    warm_up_seconds=0,
    step_grace=4,
    drain_seconds=30,
    burst=2_000,
    p1_window=5,
    wait_seconds=60,
    intake_seconds=4,
    kafka_reports=2_000,
    broker_records=50_000,
    drain_deliveries=2_000,
)
FULL = Profile(
    name="full",
    rates=(10, 25, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000),
    step_seconds=25,
    warm_up_rate=100,
    warm_up_seconds=60,
    step_grace=10,
    drain_seconds=180,
    burst=20_000,
    p1_window=20,
    wait_seconds=600,
    intake_seconds=15,
    kafka_reports=20_000,
    broker_records=300_000,
    drain_deliveries=10_000,
)
