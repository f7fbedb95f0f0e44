"""The Markdown summary of a run, including figures a run could not measure."""

from __future__ import annotations

from tools.bench.output import markdown

LATENCY = {"count": 400, "missing": 0, "p50": 120.0, "p95": 300.5, "p99": 640.0, "max": 980.0}
MISSING = {"count": 1600, "missing": 900, "p50": None, "p95": None, "p99": None, "max": None}


def step(offered: int, latency: dict[str, object], *, saturated: bool) -> dict[str, object]:
    return {
        "offered": offered,
        "seconds": 8,
        "sent": offered * 8,
        "accepted": offered * 8,
        "delivered": {"per_second": offered, "backlog_growth": 0.0, "latency_ms": latency},
        "counted": {"per_second": offered, "backlog_growth": 0.0, "latency_ms": LATENCY},
        "saturated": saturated,
        "sustainable": not saturated,
        "reasons": ["delivered: 33/s for 200/s offered"] if saturated else [],
    }


RESULTS = {
    "run": {
        "started": "2026-11-28T06:22:17+00:00",
        "profile": "quick",
        "intake_url": "http://127.0.0.1:8081",
        "kafka": "localhost:9092",
        "cpus": 2,
        "record_size": 189,
        "wall_seconds": 84.2,
    },
    "broker": {
        "producer": {"per_second": 73529.4, "p99_ms": 33.0},
        "consumer": {"per_second": 79239.1},
    },
    "kafka_intake": {"per_second": None, "ratio": None},
    "end_to_end": {
        "steps": [step(50, LATENCY, saturated=False), step(200, MISSING, saturated=True)],
        "highest_sustainable": 50,
        "ratio": 0.00068,
        "resources": {
            "seconds": 23.0,
            "peaks_reset": True,
            "processes": {"notify": {"cpu_seconds": 6.6, "cpu_percent": 28.7, "peak_mb": 135.2}},
        },
    },
    "notes": ["the end-to-end backlog had not cleared before the burst"],
}


def test_markdown_summarises_every_figure_with_its_ratio_to_the_broker() -> None:
    text = markdown(RESULTS)
    assert "| ProducerPerformance, acks=all | 73,529 records/s (p99 33 ms) | 100% |" in text
    assert "| 2 Kafka intake | submissions → incident.reported | — reports/s | — |" in text
    assert "| 3 end to end | highest sustainable offered rate | 50 reports/s | 0.1% |" in text
    assert "| 50 | 400/400 | 50 | 0 | 120 / 300 / 640 / 980 |" in text
    assert "— / — / — / — (900 missing)" in text
    assert "saturated: delivered: 33/s for 200/s offered |" in text
    assert "| notify | 6.6 | 29 | 135 |" in text
    assert "- the end-to-end backlog had not cleared before the burst" in text


def test_the_p1_burst_the_peer_side_by_side_and_the_durability_are_shown() -> None:
    from tools.bench.scenarios import side_by_side

    peer = {
        "steps": [
            {"offered": 50, "latency_ms": {**LATENCY, "p50": 3.0, "p99": 4.0}},
            {"offered": 1000, "latency_ms": {**LATENCY, "p50": 4.0, "p99": 50.0}},
        ]
    }
    peer["side_by_side"] = side_by_side(RESULTS["end_to_end"], peer)  # type: ignore[arg-type]
    results = {
        **RESULTS,
        "run": {
            **RESULTS["run"],  # type: ignore[dict-item]
            "durability": {
                "fsync": "on",
                "synchronous_commit": "on",
                "full_page_writes": "on",
                "producer_acks": "all",
            },
            "replicas": 2,
        },
        "p1_in_burst": {
            "burst_reports": 20000,
            "p1_sent": 20,
            "p1_delivered": 20,
            "p1_first_delivery_ms": {**LATENCY, "p50": 310.0, "p99": 820.0, "max": 870.0},
            "burst_drained_seconds": 95.5,
            "p1_stage_ms": {
                "intake_answer": {**LATENCY, "p50": 20.0, "p99": 90.0},
                "to_triaged": {**LATENCY, "p50": 150.0, "p99": 400.0},
                "to_receiver": {**LATENCY, "p50": 125.0, "p99": None},
            },
        },
        "peer": peer,
    }
    text = markdown(results)
    assert (
        "PostgreSQL fsync=on, synchronous_commit=on, full_page_writes=on; producers acks=all"
        in text
    )
    assert "Replicas of triage and notify: 2." in text
    assert (
        "| 7 P1 in a burst | 20/20 P1 during 20,000 P4: first delivery p50 / p99 / max | "
        "310 ms / 820 ms / 870 ms (burst drained in 95.5 s) | — |"
    ) in text
    assert ("triaged to the receiver | 20 ms (90 ms) / 150 ms (400 ms) / 125 ms (—) | — |") in text
    # 50/s: the platform's p50 120 ms against Alertmanager's 3 ms; 1,000/s was not offered.
    assert "| 50 | 120 / 300 / 640 / 980 | 3 / 300 / 4 / 980 | 40.0 times | 160.0 times |" in text
    assert "| 1,000 | — (not offered) |" in text


def test_intake_alone_is_told_apart_from_intake_beside_the_pipeline() -> None:
    row = {"batch": 500, "clients": 2, "per_second": 951.7, "ratio": 0.023}
    results = {
        **RESULTS,
        "http_intake": [{**row, "intake_alone": False}, {**row, "intake_alone": True}],
    }
    lines = [line for line in markdown(results).splitlines() if "1 HTTP intake" in line]
    assert lines == [
        "| 1 HTTP intake | batches of 500, 2 clients | 952 accepted/s | 2.3% |",
        "| 1 HTTP intake | batches of 500, 2 clients (intake alone: triage, notify, analytics "
        "paused) | 952 accepted/s | 2.3% |",
    ]


def test_a_warm_up_step_is_shown_first_and_neither_judged_nor_counted() -> None:
    warm = step(100, LATENCY, saturated=True)
    results = {**RESULTS, "end_to_end": {**RESULTS["end_to_end"], "warm_up": warm}}
    text = markdown(results)  # type: ignore[arg-type]
    rows = [line for line in text.splitlines() if line.startswith(("| 100 ", "| 50 "))]
    assert rows[0].startswith("| 100 (warm-up) | 800/800 |")
    assert rows[0].endswith("| warm-up (8 s): neither judged nor counted |")
    assert rows[1].startswith("| 50 | 400/400 |")
    assert "| 3 end to end | highest sustainable offered rate | 50 reports/s |" in text
