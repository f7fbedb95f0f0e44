"""`veilig recipients set` refuses a webhook URL the target policy forbids, with the reason,
outside local development; the allow-list lets an internal receiver in. Against the real
database (the channel is written only when the URL passes)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from services.common.settings import Settings, get_settings
from services.notify.cli import recipients_app
from services.notify.webhooks import generate_secret


@pytest.fixture
def production(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("LOCAL_DEVELOPMENT", "false")
    monkeypatch.delenv("NOTIFY_WEBHOOK_ALLOWED_NETWORKS", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def set_webhook(runner: CliRunner, code: str, url: str) -> tuple[int, str]:
    result = runner.invoke(
        recipients_app, ["set", code, "--webhook-url", url, "--secret", generate_secret()]
    )
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


@pytest.mark.parametrize(
    ("code", "url", "reason"),
    [
        ("horeca.khn", "http://169.254.169.254/", "169.254.169.254 is a link-local address"),
        ("horeca.khn", "http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("politie.meldkamer", "https://localhost/", "127.0.0.1 is a loopback address"),
        ("politie.meldkamer", "http://10.0.0.1/", "https is required for full recipients"),
        ("handhaving", "http://127.0.0.1:8090/x", "https is required for operational"),
    ],
)
def test_recipients_set_refuses_a_forbidden_url_with_the_reason(
    production: CliRunner, code: str, url: str, reason: str
) -> None:
    code_, output = set_webhook(production, code, url)
    assert code_ == 1, output
    assert reason in output
    listed = production.invoke(recipients_app, ["list", "--json"])
    assert all(row["webhook_url"] is None for row in json.loads(listed.stdout))


def test_the_allow_list_lets_an_internal_receiver_in(
    production: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, fd00::/8")
    assert set_webhook(production, "politie.meldkamer", "https://10.0.0.1/hook")[0] == 0
    assert set_webhook(production, "horeca.khn", "http://10.0.0.1/hook")[0] == 0
    still = set_webhook(production, "horeca.khn", "http://169.254.169.254/")
    assert still[0] == 1 and "link-local" in still[1]
    listed = production.invoke(recipients_app, ["list", "--json"])
    urls = {row["code"]: row["webhook_url"] for row in json.loads(listed.stdout)}
    assert urls["politie.meldkamer"] == "https://10.0.0.1/hook"
    assert urls["horeca.khn"] == "http://10.0.0.1/hook"
