"""Settings that reach a real deployment as written in the README."""

from __future__ import annotations

from services.common.settings import Settings


def test_a_cluster_of_bootstrap_servers_reaches_the_broker_as_separate_hosts() -> None:
    settings = Settings(kafka_bootstrap_servers="k1:9092, k2:9092,k3:9092")
    assert settings.bootstrap_servers == ["k1:9092", "k2:9092", "k3:9092"]
