"""The recipients registry (recipients.yaml), channel routing and notify's settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from schemas.events import IncidentTriaged
from schemas.examples import EXAMPLES
from schemas.taxonomy import Profile, taxonomy
from services.notify.handlers import changes
from services.notify.registry import Channel, RegistryError, load_registry, registry
from services.notify.settings import DEFAULT_REGISTRY, NotifySettings


def test_the_registry_names_every_recipient_kind_of_the_taxonomy() -> None:
    assert set(registry().recipients) == {kind.code for kind in taxonomy().recipients}
    # Informed, not asked to act: exactly the coarse recipients.
    for kind in taxonomy().recipients:
        assert registry().entry(kind.code).acknowledges is (kind.profile is not Profile.COARSE)


def test_chains_fill_placeholders_and_skip_steps_that_cannot_be_filled() -> None:
    reg = registry()
    # P1/P2 police chains end at the duty officer (DOMAIN.md politie.ovd).
    assert reg.chain("politie.wijkagent.WK039201", wijk="WK039201") == (
        "politie.meldkamer",
        "politie.ovd",
    )
    assert reg.chain("jeugd.team", wijk="WK039214") == (
        "politie.wijkagent.WK039214",
        "politie.meldkamer",
        "politie.ovd",
    )
    assert reg.chain("jeugd.team", wijk=None) == ("politie.meldkamer", "politie.ovd")
    assert reg.chain("politie.meldkamer") == ("politie.ovd",)
    assert reg.chain("politie.ovd") == ()


def write(tmp_path: Path, change: dict[str, object]) -> Path:
    data = yaml.safe_load(DEFAULT_REGISTRY.read_text(encoding="utf-8"))
    data["recipients"].update(change)
    path = tmp_path / "recipients.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"brandweer": {"acknowledges": True, "escalation": ["politie.hoofd"]}}, "'politie.hoofd'"),
        ({"horeca.khn": {"format": "cap", "acknowledges": False}}, "profile is not full"),
        ({"politie.wijkagent": {"acknowledges": True}}, "not a recipient kind"),
        ({"brandweer": {"acknowledges": True, "retries": 3}}, "retries"),
    ],
)
def test_a_bad_registry_says_what_is_wrong(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    with pytest.raises(RegistryError, match=problem):
        load_registry(write(tmp_path, change))


def test_a_kind_missing_from_the_registry_is_named(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_REGISTRY.read_text(encoding="utf-8"))
    del data["recipients"]["sus-team"]
    path = tmp_path / "recipients.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(RegistryError, match="sus-team: missing"):
        load_registry(path)


def channel(**changes: object) -> Channel:
    fields: dict[str, object] = {
        "code": "brandweer",
        "webhook_url": "https://example.org/hook",
        "webhook_format": "cap",
        "secrets": ("whsec_x",),
        "email": "meldkamer@example.org",
        "webhook_disabled_at": None,
        "email_disabled_at": None,
        "updated_at": datetime.now(UTC),
    }
    fields.update(changes)
    return Channel(**fields)  # type: ignore[arg-type]


def test_routing_prefers_the_webhook_and_falls_back_to_email_when_it_is_gone() -> None:
    assert channel().route(Profile.FULL) == "cap"
    # CAP carries the full picture: anything less gets the minimised JSON.
    assert channel().route(Profile.OPERATIONAL) == "webhook"
    assert channel(webhook_format="json").route(Profile.FULL) == "webhook"
    gone = datetime.now(UTC)
    assert channel(webhook_disabled_at=gone).route(Profile.FULL) == "email"
    assert channel(webhook_url=None).route(Profile.FULL) == "email"
    assert channel(webhook_disabled_at=gone, email_disabled_at=gone).route(Profile.FULL) is None


def test_changes_say_what_a_staying_recipient_sees_differently() -> None:
    old = EXAMPLES[IncidentTriaged]
    assert isinstance(old, IncidentTriaged)
    assert changes(old, old) == []
    new = old.model_copy(update={"category": "hic.overval", "report_count": 2})
    assert changes(old, new) == ["categorie woninginbraak → overval", "2 meldingen"]


def test_the_lease_must_outlive_a_send() -> None:
    with pytest.raises(ValidationError, match="lease_seconds"):
        NotifySettings(lease_seconds=5, http_timeout_seconds=10)
