"""A status callback's body: the partner's own report and its public status, nothing else."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from services.intake.callbacks import body_of
from services.notify.webhooks import check_secret, generate_secret


def test_the_body_is_the_reports_public_status_in_utc() -> None:
    incident = uuid4()
    row = {
        "incident_id": incident,
        "external_id": "MC-17",
        "status": "resolved",
        "note": "handled",
        "at": datetime(2026, 12, 1, 19, 30, tzinfo=timezone(timedelta(hours=1))),
        "partner": "mendel-college",
        "url": "https://hooks.example/x",
        "secrets_sealed": "gAAAA-not-for-the-body",
    }
    message = json.loads(body_of(row))  # type: ignore[arg-type]
    assert message == {
        "type": "report.status-changed",
        "timestamp": "2026-12-01T18:30:00Z",
        "data": {
            "incident_id": str(incident),
            "external_id": "MC-17",
            "status": "resolved",
            "note": "handled",
            "at": "2026-12-01T18:30:00Z",
        },
    }


@pytest.mark.parametrize("bad", ["geheim", "whsec_QQ==", "whsec_not base64"])
def test_secrets_are_standard_webhooks_secrets(bad: str) -> None:
    secret = generate_secret()
    assert check_secret(secret) == secret
    with pytest.raises(ValueError, match="whsec_ followed by base64"):
        check_secret(bad)
