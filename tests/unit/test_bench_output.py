"""The Markdown summary of a run, including figures a run could not measure."""

from __future__ import annotations

from tools.bench.output import markdown

LATENCY = {"count": 400, "missing": 0, "p50": 120.0, "p95": 300.5, "p99": 640.0, "max": 980.0}
MISSING = {"count": 1600, "missing": 900, "p50": None, "p95": None, "p99": None, "max": None}


def step(offered: int, latency: dict[str, object], *, saturated: bool) -> dict[str, object]:
    return {
        "offered": offered,
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
