"""The limit: Kafka's own ``ProducerPerformance`` and ``ConsumerPerformance`` against the same
broker, with the platform's record size, ``acks=all`` and producer linger, on a topic of 12
partitions made for it (the broker creates no topics by itself) and deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from services.common.kafka_security import java_client_properties
from services.common.settings import Settings
from services.common.topics import connect_admin

ROOT = Path(__file__).resolve().parents[2]
# The jars `deploy/local/kafka.sh libs` resolves (the same variable as that script).
LIBS = Path(os.environ.get("KAFKA_LIBS_DIR", ROOT / ".run" / "kafka-libs"))
PARTITIONS = 12

_PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<per_second>[\d.]+) records/sec "
    r"\((?P<mb_per_second>[\d.]+) MB/sec\), (?P<avg_ms>[\d.]+) ms avg latency, "
    r"(?P<max_ms>[\d.]+) ms max latency, (?P<p50_ms>\d+) ms 50th, (?P<p95_ms>\d+) ms 95th, "
    r"(?P<p99_ms>\d+) ms 99th, (?P<p999_ms>\d+) ms 99.9th"
)


class ToolOutputError(ValueError):
    """A Kafka tool printed something other than its summary."""


@dataclass(frozen=True, slots=True)
class ProducerPerf:
    records: int
    per_second: float
    mb_per_second: float
    avg_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float


@dataclass(frozen=True, slots=True)
class ConsumerPerf:
    messages: int
    per_second: float
    mb_per_second: float
    fetch_per_second: float  # without the group's rebalance time


def parse_producer(output: str) -> ProducerPerf:
    """The summary line of ProducerPerformance (the last one; earlier lines are progress)."""
    found = list(_PRODUCER_SUMMARY.finditer(output))
    if not found:
        raise ToolOutputError(f"no ProducerPerformance summary in: {output[-500:]!r}")
    values = found[-1].groupdict()
    return ProducerPerf(
        records=int(values.pop("records")), **{k: float(v) for k, v in values.items()}
    )


def parse_consumer(output: str) -> ConsumerPerf:
    """ConsumerPerformance prints a CSV header and one line of values."""
    lines = [line for line in output.splitlines() if line.strip()]
    for n, line in enumerate(lines[:-1]):
        if line.startswith("start.time"):
            row = dict(
                zip(
                    (h.strip() for h in line.split(",")),
                    (v.strip() for v in lines[n + 1].split(",")),
                    strict=True,
                )
            )
            return ConsumerPerf(
                messages=int(row["data.consumed.in.nMsg"]),
                per_second=float(row["nMsg.sec"]),
                mb_per_second=float(row["MB.sec"]),
                fetch_per_second=float(row["fetch.nMsg.sec"]),
            )
    raise ToolOutputError(f"no ConsumerPerformance summary in: {output[-500:]!r}")


async def _java(main_class: str, args: list[str], log_dir: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        "java",
        "-cp",
        f"{LIBS}/*",
        f"-Dlog4j2.configurationFile={ROOT / 'deploy' / 'kafka' / 'log4j2.xml'}",
        f"-Dkafka.logs.dir={log_dir}",
        main_class,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise ToolOutputError(f"{main_class} exited with {process.returncode}: {text[-800:]}")
    return text


def _client_config(settings: Settings, log_dir: Path) -> Path:
    """The tools sign in as the platform does; the file holds a password: owner-only."""
    path = log_dir / "client.properties"
    log_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(java_client_properties(settings), encoding="utf-8")
    return path


async def broker_baseline(
    settings: Settings, *, topic: str, records: int, record_size: int, log_dir: Path
) -> dict[str, Any]:
    """Produce ``records`` of ``record_size`` bytes as fast as the broker takes them, then
    consume them in a fresh group; the perf topic is deleted afterwards. The tools log to
    ``log_dir`` (log4j makes it)."""
    admin = await connect_admin(settings)
    client_config = await asyncio.to_thread(_client_config, settings, log_dir)
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    PARTITIONS,
                    settings.kafka_replication_factor,
                    topic_configs={"min.insync.replicas": str(settings.kafka_min_insync_replicas)},
                )
            ]
        )
        producer = parse_producer(
            await _java(
                "org.apache.kafka.tools.ProducerPerformance",
                [
                    "--topic", topic,
                    "--num-records", str(records),
                    "--record-size", str(record_size),
                    "--throughput", "-1",
                    "--producer.config", str(client_config),
                    "--producer-props",
                    "acks=all",
                    f"linger.ms={settings.kafka_linger_ms}",
                ],
                log_dir,
            )
        )  # fmt: skip
        consumer = parse_consumer(
            await _java(
                "org.apache.kafka.tools.ConsumerPerformance",
                [
                    "--bootstrap-server", settings.kafka_bootstrap_servers,
                    "--consumer.config", str(client_config),
                    "--topic", topic,
                    "--messages", str(records),
                    "--group", f"{topic}-group",
                    "--timeout", "60000",
                ],
                log_dir,
            )
        )  # fmt: skip
    finally:
        client_config.unlink(missing_ok=True)
        with contextlib.suppress(KafkaError):  # a topic left behind is harmless
            await admin.delete_topics([topic])
        await admin.close()
    return {
        "topic_partitions": PARTITIONS,
        "record_size": record_size,
        "producer": asdict(producer),
        "consumer": asdict(consumer),
    }
