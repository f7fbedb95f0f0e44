"""How `make run` and `make bench` lay out the processes: the urgent lane of intake, triage
and notify in a process of its own, the bulk work at a lower scheduling priority."""

from __future__ import annotations

from services.common.settings import Settings
from tools.cli import platform_programs


def test_each_laned_service_has_an_urgent_process_of_its_own() -> None:
    settings = Settings()
    programs = {p.name: p for p in platform_programs(settings, "secret")}
    assert set(programs) == {
        "intake",
        "intake-urgent",
        "triage",
        "triage-urgent",
        "notify",
        "notify-urgent",
        "analytics",
        "standins",
    }
    for service in ("intake", "triage", "notify"):
        main, urgent = programs[service], programs[f"{service}-urgent"]
        assert (main.env["LANE"], urgent.env["LANE"]) == ("main", "urgent")
        assert not urgent.bulk
        # Its own ports, and the same principal as the service.
        port, metrics = f"{service.upper()}_PORT", f"{service.upper()}_METRICS_PORT"
        assert urgent.env[port] != str(settings.port_of(service))
        assert urgent.env[metrics] != str(settings.metrics_port_of(service))
        assert urgent.health_url and urgent.env[port] in urgent.health_url
        assert urgent.argv == main.argv
    # The bulk yields the CPU; intake's main process answers the partners, the P1s too.
    assert not programs["intake"].bulk
    assert all(programs[n].bulk for n in ("triage", "notify", "analytics"))
    assert "LANE" not in programs["analytics"].env
    # Notify's urgent process mails and links acknowledgements as the main one does.
    assert programs["notify-urgent"].env["NOTIFY_SMTP_HOST"] == "127.0.0.1"
    assert (
        programs["notify-urgent"].env["NOTIFY_PUBLIC_BASE_URL"]
        == programs["notify"].env["NOTIFY_PUBLIC_BASE_URL"]
    )


def test_replicas_add_main_lanes_only() -> None:
    programs = {p.name: p for p in platform_programs(Settings(), "secret", replicas=2)}
    assert programs["triage-2"].env["LANE"] == "main"
    assert programs["notify-2"].bulk
    assert "triage-urgent-2" not in programs and "intake-2" not in programs
