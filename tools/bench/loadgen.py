"""The load generator: a process of its own (the platform's processes and the bench's
observers must not share its CPU time slices or its event loop), driven through a pipe.

Open loop: requests leave at fixed ticks whatever the platform answers (never waiting for a
response before the next tick), each report carrying its *scheduled* time, so latency is
measured from when the report was due and a slow platform cannot hide its queueing
(no coordinated omission). The connection pool is bounded: a request waiting for a free
connection is queueing the latency includes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from services.common.kafka_security import client_options
from services.common.settings import Settings
from tools.bench.reports import p1_report, submission
from tools.bench.stats import open_loop_schedule

MAX_REQUESTS_PER_SECOND = 50
"""Open loop: above this rate reports go in batches (``/v1/incidents:batch``) of that many
requests a second, so that the generator's own CPU is not what saturates."""
CONNECTIONS = 64
ACCEPTED = (200, 202)
RETRY_BACKOFF, RETRY_BACKOFF_MAX = 0.5, 5.0  # seconds between a partner's retries


@dataclass(frozen=True, slots=True)
class Target:
    intake_url: str
    partner: str
    key: str
    # The platform's settings: its brokers, how to sign in, its producer linger (so that Kafka
    # intake is fed as it would be).
    kafka: Settings
    submissions_topic: str  # the partner's own topic
    run: str
    timeout: float = 60.0  # of one request (connect, read, write)


@dataclass(frozen=True, slots=True)
class OpenLoop:
    rate: float
    seconds: float
    first: int  # index of the first report
    # > 0: like a partner, send a request that got a 5xx, a 429 or no answer again with the
    # same reports (same external ids: idempotent) until this many seconds after it was due.
    retry_for: float = 0.0


@dataclass(frozen=True, slots=True)
class ClosedLoop:
    batch: int  # 1: POST /v1/incidents, else /v1/incidents:batch
    concurrency: int
    seconds: float
    first: int


@dataclass(frozen=True, slots=True)
class Burst:
    count: int
    batch: int
    concurrency: int
    first: int
    urgent_at: tuple[float, ...] = ()  # seconds after the start: a P1 each (p1_report)


@dataclass(frozen=True, slots=True)
class KafkaSubmit:
    count: int
    first: int


@dataclass(frozen=True, slots=True)
class AlertLoop:
    """The peer: alerts to Prometheus Alertmanager's API, at the same open-loop ticks."""

    url: str  # Alertmanager's base URL
    rate: float
    seconds: float
    first: int


Job = OpenLoop | ClosedLoop | Burst | KafkaSubmit | AlertLoop


def alert_id(run: str, index: int) -> str:
    """The ``incident_id`` label of alert ``index``: what the receiver reports back."""
    return f"am-{run}-{index}"


@dataclass(frozen=True, slots=True)
class Sent:
    """One report: when it was due, when intake answered, and what."""

    index: int
    scheduled: float  # wall clock (time.time()), comparable with the receiver's clock
    answered: float
    status: int  # HTTP status of its (last) request; 0: no answer
    incident_id: str | None  # set when accepted
    attempts: int = 1  # requests it took (more than one only when retrying)


@dataclass(frozen=True, slots=True)
class SentReports:
    sent: list[Sent]
    used: int  # report indices used
    lag: float  # how far (s) the generator fell behind its schedule at worst
    started: float = 0.0  # wall clock: when the first request went
    urgent: tuple[Sent, ...] = ()  # a burst's P1s (Burst.urgent_at), index = their number


@dataclass(frozen=True, slots=True)
class ClosedResult:
    accepted: int
    rejected: int
    seconds: float
    used: int
    request_seconds: list[float]


@dataclass(frozen=True, slots=True)
class KafkaResult:
    first_sent: float
    last_acked: float


Result = SentReports | ClosedResult | KafkaResult


class LoadGenerator:
    """Owns the generator process; :meth:`run` is blocking (call it in a thread)."""

    def __init__(self, target: Target) -> None:
        # spawn: the bench process has an event loop and sockets a child must not inherit.
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, target), name="bench-load")
        self._process.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def run(self, job: Job) -> Result:
        self._conn.send(job)
        result: Result | BaseException = self._conn.recv()
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _serve(conn: Connection, target: Target) -> None:
    while (job := conn.recv()) is not None:
        try:
            result: Result | BaseException = asyncio.run(_run(job, target))
        except Exception as exc:  # the bench reports it; the generator stays up
            result = exc
        conn.send(result)


async def _run(job: Job, target: Target) -> Result:
    match job:
        case OpenLoop():
            return await _open_loop(job, target)
        case ClosedLoop():
            return await _closed_loop(job, target)
        case Burst():
            return await _burst(job, target)
        case KafkaSubmit():
            return await _kafka(job, target)
        case AlertLoop():
            return await _alert_loop(job, target)


# aiohttp, not httpx: the same 3,000 single reports from 16 clients cost httpx 2.75 ms of CPU
# a request against aiohttp's 0.15 ms (decision 0006, session 11); on two shared cores the
# generator would otherwise take a third of a core from the platform it measures.
NO_ANSWER = (aiohttp.ClientError, TimeoutError)


def _session(
    base_url: str, connections: int, timeout: float, **headers: str
) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base_url,
        headers=headers,
        connector=aiohttp.TCPConnector(limit=connections),
        # No timeout on waiting for a free connection: that is queueing, which the latency shows.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
    )


def _client(target: Target, connections: int) -> aiohttp.ClientSession:
    return _session(
        target.intake_url, connections, target.timeout, Authorization=f"Bearer {target.key}"
    )


async def _post(
    client: aiohttp.ClientSession,
    target: Target,
    first: int,
    count: int,
    scheduled: float,
    retry_until: float | None = None,
    slots: asyncio.Semaphore | None = None,
) -> list[Sent]:
    """Send reports ``first`` .. ``first + count - 1`` in one request; until ``retry_until``
    (wall clock), again after a refusal worth retrying (5xx, 429, no answer). With ``slots``,
    each request first waits for one of them."""
    reports = [submission(target.run, i) for i in range(first, first + count)]
    attempts, backoff = 0, RETRY_BACKOFF
    while True:
        attempts += 1
        async with slots or contextlib.nullcontext():
            status, ids, retry_after = await _send(client, reports)
        retryable = status == 0 or status == 429 or status >= 500
        if not retryable or retry_until is None or time.time() >= retry_until:
            break
        # Retry-After is a floor, the backoff is capped: a partner does not give up quietly.
        await asyncio.sleep(min(max(backoff, retry_after or 0.0), RETRY_BACKOFF_MAX))
        backoff = min(backoff * 2, RETRY_BACKOFF_MAX)
    answered = time.time()
    return [
        Sent(first + n, scheduled, answered, status, incident, attempts)
        for n, incident in enumerate(ids)
    ]


async def _send(
    client: aiohttp.ClientSession, reports: list[dict[str, Any]]
) -> tuple[int, list[str | None], float | None]:
    """One request: (HTTP status or 0, incident id per accepted report, Retry-After)."""
    ids: list[str | None] = [None] * len(reports)
    try:
        single = len(reports) == 1
        path, body = (
            ("/v1/incidents", reports[0])
            if single
            else ("/v1/incidents:batch", {"reports": reports})
        )
        async with client.post(path, json=body) as response:
            status = response.status
            retry_after = response.headers.get("retry-after", "")
            if status in ACCEPTED:
                answer = await response.json()
                if single:
                    ids[0] = answer["incident_id"]
                else:
                    for item in answer["results"]:
                        if item["result"] == "accepted":
                            ids[item["index"]] = item["incident_id"]
            else:
                await response.read()
    except NO_ANSWER:
        return 0, ids, None
    return status, ids, float(retry_after) if retry_after.isdigit() else None


async def _open_loop(job: OpenLoop, target: Target) -> SentReports:
    schedule = open_loop_schedule(job.rate, job.seconds, MAX_REQUESTS_PER_SECOND)
    loop = asyncio.get_running_loop()
    # Requests beyond the pool's connections wait here, not in the client's pool: a platform
    # that stalls for a while (the chaos runs) would otherwise leave the generator spinning on
    # thousands of them.
    slots = asyncio.Semaphore(CONNECTIONS)
    async with _client(target, CONNECTIONS) as client:
        start_mono, start_wall = loop.time() + 0.05, time.time() + 0.05
        requests: list[asyncio.Task[list[Sent]]] = []
        index, lag = job.first, 0.0
        for offset, count in schedule:
            delay = start_mono + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(lag, -delay)
            due = start_wall + offset
            retry_until = due + job.retry_for if job.retry_for > 0 else None
            requests.append(
                asyncio.create_task(_post(client, target, index, count, due, retry_until, slots))
            )
            index += count
        sent = [s for batch in await asyncio.gather(*requests) for s in batch]
    return SentReports(sent=sent, used=index - job.first, lag=lag)


async def _closed_loop(job: ClosedLoop, target: Target) -> ClosedResult:
    """``concurrency`` clients, each sending its next request when the last was answered."""
    loop = asyncio.get_running_loop()
    next_index = job.first
    accepted = rejected = 0
    request_seconds: list[float] = []

    async def client_loop(client: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal next_index, accepted, rejected
        while loop.time() < deadline:
            first, next_index = next_index, next_index + job.batch
            began = time.time()
            sent = await _post(client, target, first, job.batch, began)
            request_seconds.append(sent[0].answered - began)
            ok = sum(s.incident_id is not None for s in sent)
            accepted += ok
            rejected += len(sent) - ok

    async with _client(target, job.concurrency) as client:
        started = loop.time()
        deadline = started + job.seconds
        await asyncio.gather(*(client_loop(client, deadline) for _ in range(job.concurrency)))
        seconds = loop.time() - started
    return ClosedResult(accepted, rejected, seconds, next_index - job.first, request_seconds)


async def _burst(job: Burst, target: Target) -> SentReports:
    """Every report at once: all due now, sent as fast as ``concurrency`` connections go; and
    a P1 at each moment of ``urgent_at``, over a connection of its own."""

    async def urgent(client: aiohttp.ClientSession, start: float) -> list[Sent]:
        sent = []
        for n, moment in enumerate(job.urgent_at):
            await asyncio.sleep(max(0.0, start + moment - time.time()))
            at = time.time()
            status, (incident,), _ = await _send(client, [p1_report(target.run, n)])
            sent.append(Sent(n, at, time.time(), status, incident))
        return sent

    async with _client(target, job.concurrency) as client, _client(target, 1) as alone:
        scheduled = time.time()
        p1s = asyncio.create_task(urgent(alone, scheduled))
        batches = [
            _post(client, target, first, min(job.batch, job.first + job.count - first), scheduled)
            for first in range(job.first, job.first + job.count, job.batch)
        ]
        sent = [s for batch in await asyncio.gather(*batches) for s in batch]
        urgent_sent = await p1s
    return SentReports(
        sent=sent, used=job.count, lag=0.0, started=scheduled, urgent=tuple(urgent_sent)
    )


async def _kafka(job: KafkaSubmit, target: Target) -> KafkaResult:
    """Reports straight onto the partner's topic, keyed by external id."""
    producer = AIOKafkaProducer(
        **client_options(target.kafka),
        acks="all",
        enable_idempotence=True,
        linger_ms=target.kafka.kafka_linger_ms,
    )
    await producer.start()
    try:
        first_sent = time.time()
        pending: list[asyncio.Future[Any]] = []
        for index in range(job.first, job.first + job.count):
            body = submission(target.run, index)
            key = body["external_id"].encode()
            pending.append(
                await producer.send(target.submissions_topic, json.dumps(body).encode(), key=key)
            )
        await asyncio.gather(*pending)
        return KafkaResult(first_sent=first_sent, last_acked=time.time())
    finally:
        await producer.stop()


async def _alert_loop(job: AlertLoop, target: Target) -> SentReports:
    """The same schedule as :func:`_open_loop`, each tick's reports as alerts (one label set
    each, so that every alert is its own notification) posted to Alertmanager."""
    schedule = open_loop_schedule(job.rate, job.seconds, MAX_REQUESTS_PER_SECOND)
    loop = asyncio.get_running_loop()

    async def post(client: aiohttp.ClientSession, first: int, count: int, due: float) -> list[Sent]:
        ids = [alert_id(target.run, i) for i in range(first, first + count)]
        alerts = [
            {"labels": {"alertname": "VeiligBench", "incident_id": i}, "annotations": {}}
            for i in ids
        ]
        try:
            async with client.post("/api/v2/alerts", json=alerts) as response:
                status = response.status
                await response.read()
        except NO_ANSWER:
            status = 0
        answered = time.time()
        return [
            Sent(first + n, due, answered, status, i if status == 200 else None)
            for n, i in enumerate(ids)
        ]

    async with _session(job.url, CONNECTIONS, target.timeout) as client:
        start_mono, start_wall = loop.time() + 0.05, time.time() + 0.05
        requests: list[asyncio.Task[list[Sent]]] = []
        index, lag = job.first, 0.0
        for offset, count in schedule:
            delay = start_mono + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(lag, -delay)
            requests.append(asyncio.create_task(post(client, index, count, start_wall + offset)))
            index += count
        sent = [s for batch in await asyncio.gather(*requests) for s in batch]
    return SentReports(sent=sent, used=index - job.first, lag=lag)
