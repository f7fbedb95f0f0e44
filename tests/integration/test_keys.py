"""`veilig keys …` against the real database.

- `secrets reseal`: channel and callback secrets sealed with the PII key (as before secrets had
  a key of their own) move to the secrets key, audited, and a second run changes nothing.
  Afterwards no secret depends on a PII key, so retiring one to shred personal data breaks no
  channel.
- `pii rotate`: a new key first in the key file, the live personal data (triage's and notify's
  sealed contact, notify's messages still to be sent) re-sealed with it, what is done or erased
  left alone, audited; the old key is named as the one that may be dropped.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from uuid import UUID, uuid4

import asyncpg
import pytest
from cryptography.fernet import Fernet

from services.cli import executable
from services.common import dlq, keys
from services.common.migrations import load_migrations, migrate
from services.common.pii import fingerprint, seal
from services.common.settings import Settings
from services.intake import callbacks, partners
from services.intake.service import SPEC as INTAKE
from services.notify.registry import set_channel
from services.notify.service import make_spec
from services.notify.webhooks import generate_secret
from services.triage.service import SPEC as TRIAGE

pytestmark = pytest.mark.integration

VEILIG = executable()


async def _veilig(settings: Settings, *args: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        VEILIG,
        *args,
        "--by",
        "ops-test",
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url.get_secret_value(),
            "COLUMNS": "250",  # one message, one line
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_secrets_sealed_with_the_pii_key_move_to_their_own_key_audited_and_once(
    settings: Settings,
) -> None:
    url = settings.database_url.get_secret_value()
    notify = await asyncpg.connect(url, server_settings={"search_path": "notify"})
    intake = await asyncpg.connect(url, server_settings={"search_path": "intake"})
    try:
        await migrate(notify, "notify", load_migrations(make_spec().migrations))
        await migrate(intake, "intake", load_migrations(INTAKE.migrations))
        secret = generate_secret()
        await set_channel(
            notify, "handhaving", webhook_url="https://h.example/hook", secrets=[secret]
        )
        old_style = seal(json.dumps([secret]))  # a channel sealed before secrets had a key
        await notify.execute(
            "INSERT INTO channels (code, webhook_url, secrets_sealed) VALUES ($1, $2, $3)",
            "politie.meldkamer",
            "https://meldkamer.example/hook",
            old_style,
        )
        await partners.add_partner(intake, "politie", name="Politie", kind="police")
        await callbacks.set_callback(intake, settings, "politie", "https://p.example/cb", [secret])
        await intake.execute("UPDATE partner_callbacks SET secrets_sealed = $1", old_style)

        code, out = await _veilig(settings, "keys", "secrets", "reseal")
        assert code == 0, out
        assert "notify.channels: 1 secret(s) re-sealed" in out, out
        assert "intake.partner_callbacks: 1 secret(s) re-sealed" in out, out
        assert secret not in out and secret.removeprefix("whsec_") not in out

        sealed = [
            *await notify.fetch("SELECT secrets_sealed AS s FROM channels"),
            *await intake.fetch("SELECT secrets_sealed AS s FROM partner_callbacks"),
        ]
        assert len(sealed) == 3
        for row in sealed:  # the first secrets key opens each: no PII key needed
            opened = Fernet(os.environ["SECRETS_KEYS"].split(",")[0]).decrypt(row["s"].encode())
            assert json.loads(opened) == [secret]

        again_code, again = await _veilig(settings, "keys", "secrets", "reseal")
        assert again_code == 0, again
        assert "notify.channels: 0 secret(s) re-sealed" in again, again
        assert "intake.partner_callbacks: 0 secret(s) re-sealed" in again, again

        audit = await notify.fetch(
            "SELECT who, operation, resealed, outcome, finished_at FROM ops.key_operations "
            "ORDER BY id"
        )
        assert [(r["who"], r["operation"], r["outcome"]) for r in audit] == [
            ("ops-test", "secrets-reseal", "done"),
            ("ops-test", "secrets-reseal", "done"),
        ]
        once, nothing = {"resealed": 1, "unreadable": 0}, {"resealed": 0, "unreadable": 0}
        assert [json.loads(r["resealed"]) for r in audit] == [
            {"notify.channels": once, "intake.partner_callbacks": once},
            {"notify.channels": nothing, "intake.partner_callbacks": nothing},
        ]
        assert all(r["finished_at"] is not None for r in audit)
    finally:
        await notify.close()
        await intake.close()


def _report(sealed_contact: str | None) -> dict[str, object]:
    return {"description": "Fietsendiefstal", "reporter_sealed": sealed_contact}


async def _incident(triage: asyncpg.Connection, sealed_contact: str | None) -> UUID:
    incident_id = uuid4()
    now = datetime.now(UTC)
    await triage.execute(
        "INSERT INTO incidents (incident_id, report, occurred_at, received_at, partner, category, "
        "effective_priority, confidence, needs_review, reasons, top_categories, recipients, "
        "acknowledge_by, handle_by, status, updated_at) VALUES ($1, $2::jsonb, $3, $3, "
        "'politie', 'fietsendiefstal', 'P4', 0.9, false, '[]', '[]', '[]', $3, $3, 'open', $3)",
        incident_id,
        json.dumps(_report(sealed_contact)),
        now,
    )
    return incident_id


async def _delivery(notify: asyncpg.Connection, incident_id: UUID, body: str, status: str) -> UUID:
    message_id = uuid4()
    await notify.execute(
        "INSERT INTO deliveries (message_id, incident_id, recipient, kind, channel, profile, "
        "priority, content_type, body_sealed, first_message_id, status) VALUES ($1, $2, "
        "'politie.meldkamer', 'alert', 'webhook', 'full', 'P4', 'application/json', $3, $1, $4)",
        message_id,
        incident_id,
        body,
        status,
    )
    return message_id


async def test_rotating_the_pii_key_reseals_the_live_personal_data_and_names_the_old_key(
    settings: Settings, tmp_path: Path
) -> None:
    old = os.environ["PII_KEYS"].split(",")[0].encode()
    key_file = tmp_path / "pii.keys"
    key_file.write_bytes(old + b"\n")
    contact = seal('{"name":"Anna de Vries","phone":"06-12345678"}')
    url = settings.database_url.get_secret_value()
    triage = await asyncpg.connect(url, server_settings={"search_path": "triage"})
    notify = await asyncpg.connect(url, server_settings={"search_path": "notify"})
    try:
        await migrate(triage, "triage", load_migrations(TRIAGE.migrations))
        await migrate(notify, "notify", load_migrations(make_spec().migrations))
        incidents = [await _incident(triage, contact) for _ in range(3)]
        erased = await _incident(triage, None)  # purged before: nothing to re-seal
        shredded_token = Fernet(Fernet.generate_key()).encrypt(b"{}").decode()
        shredded = await _incident(triage, shredded_token)  # its key was dropped long ago
        await notify.execute(
            "INSERT INTO incidents (incident_id, reported) SELECT unnest($1::uuid[]), $2::jsonb",
            incidents,
            json.dumps(_report(contact)),
        )
        body = seal('{"reporter":{"name":"Anna de Vries"}}')
        pending = await _delivery(notify, incidents[0], body, "pending")
        in_flight = await _delivery(notify, incidents[1], body, "in_flight")
        delivered = await _delivery(notify, incidents[2], body, "delivered")
        purged = await _delivery(notify, incidents[2], "", "pending")  # erased content
        await dlq.ensure_schema(notify)
        period_key = await notify.fetchval(
            "INSERT INTO ops.period_keys (key_id, period, key_sealed) "
            "VALUES ($1, '1999-12-31', $2) RETURNING key_id",
            uuid4(),
            seal(Fernet.generate_key().decode()),
        )

        code, out = await _veilig(
            settings, "keys", "pii", "rotate", PII_KEYS="", PII_KEY_FILE=str(key_file)
        )
        assert code == 0, out
        new = key_file.read_bytes().splitlines()[0]
        assert key_file.read_bytes().splitlines()[1:] == [old]
        assert (
            "triage.incidents: 3 value(s) re-sealed, 1 no configured key opens (left as they are)"
            in out
        ), out
        assert "notify.incidents: 3 value(s) re-sealed" in out, out
        assert "notify.deliveries: 2 value(s) re-sealed" in out, out
        assert "may be dropped" in out and fingerprint(old) in out, out
        assert old.decode() not in out and new.decode() not in out  # keys are never printed

        only_new = Fernet(new)
        for row in await triage.fetch(
            "SELECT report->>'reporter_sealed' AS s FROM incidents WHERE incident_id = ANY($1)",
            incidents,
        ):
            assert json.loads(only_new.decrypt(row["s"].encode()))["name"] == "Anna de Vries"
        for row in await notify.fetch("SELECT reported->>'reporter_sealed' AS s FROM incidents"):
            only_new.decrypt(row["s"].encode())
        bodies = dict(await notify.fetch("SELECT message_id, body_sealed FROM deliveries"))
        for live in (pending, in_flight):
            only_new.decrypt(bodies[live].encode())
        assert bodies[delivered] == body  # sent: not read again, left as it was
        only_new.decrypt(
            (
                await notify.fetchval(
                    "SELECT key_sealed FROM ops.period_keys WHERE key_id = $1", period_key
                )
            ).encode()
        )
        assert bodies[purged] == ""
        assert (
            await triage.fetchval(
                "SELECT report->>'reporter_sealed' FROM incidents WHERE incident_id = $1", erased
            )
            is None
        )
        assert (
            await triage.fetchval(
                "SELECT report->>'reporter_sealed' FROM incidents WHERE incident_id = $1",
                shredded,
            )
            == shredded_token
        )

        again_code, again = await _veilig(
            settings, "keys", "pii", "reseal", PII_KEYS="", PII_KEY_FILE=str(key_file)
        )
        assert again_code == 0, again
        assert "triage.incidents: 0 value(s) re-sealed, 1 no configured" in again, again
        audit = await notify.fetch(
            "SELECT operation, key_id, resealed, outcome FROM ops.key_operations ORDER BY id"
        )
        assert [(r["operation"], r["key_id"], r["outcome"]) for r in audit] == [
            ("pii-rotate", fingerprint(new), "done"),
            ("pii-reseal", fingerprint(new), "done"),
        ]
        resealed = json.loads(audit[0]["resealed"])
        # Other tests' period keys share the ops schema: at least the one made here.
        assert resealed.pop("ops.period_keys")["resealed"] >= 1
        assert resealed == {
            "triage.incidents": {"resealed": 3, "unreadable": 1},
            "notify.incidents": {"resealed": 3, "unreadable": 0},
            "notify.deliveries": {"resealed": 2, "unreadable": 0},
        }
    finally:
        await triage.close()
        await notify.close()


@dataclass
class ErasedBeforeTheWrite:
    """The connection re-sealing runs on, with notify erasing a message (another connection)
    between the read of a batch and its write."""

    conn: asyncpg.Connection
    notify: asyncpg.Connection
    message_id: UUID

    async def fetchval(self, query: str, *args: object) -> object:
        return await self.conn.fetchval(query, *args)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        return await self.conn.fetch(query, *args)

    async def execute(self, query: str, *args: object) -> str:
        await self.notify.execute(
            "UPDATE deliveries SET body_sealed = '' WHERE message_id = $1", self.message_id
        )
        return await self.conn.execute(query, *args)


async def test_a_message_erased_while_it_is_resealed_stays_erased(settings: Settings) -> None:
    url = settings.database_url.get_secret_value()
    conn = await asyncpg.connect(url)
    notify = await asyncpg.connect(url, server_settings={"search_path": "notify"})
    try:
        await migrate(notify, "notify", load_migrations(make_spec().migrations))
        erased = await _delivery(notify, uuid4(), seal("a"), "pending")
        kept = await _delivery(notify, uuid4(), seal("b"), "pending")
        racing = ErasedBeforeTheWrite(conn, notify, erased)
        (deliveries,) = [c for c in keys.PII_COLUMNS if c.table == "notify.deliveries"]
        changed = await keys.reseal_column(
            cast(asyncpg.Connection, racing), deliveries, lambda token: f"resealed {token}"
        )
        assert changed == keys.Counts(resealed=1, unreadable=0)
        bodies = dict(await notify.fetch("SELECT message_id, body_sealed FROM deliveries"))
        assert bodies[erased] == ""
        assert bodies[kept].startswith("resealed ")
    finally:
        await conn.close()
        await notify.close()


async def test_with_pii_keys_in_the_environment_rotate_prints_the_list_and_reseals_nothing(
    settings: Settings,
) -> None:
    url = settings.database_url.get_secret_value()
    triage = await asyncpg.connect(url, server_settings={"search_path": "triage"})
    try:
        await migrate(triage, "triage", load_migrations(TRIAGE.migrations))
        contact = seal('{"name":"Anna de Vries"}')
        incident = await _incident(triage, contact)
        code, out = await _veilig(settings, "keys", "pii", "rotate")
        assert code == 0, out
        (line,) = [line for line in out.splitlines() if line.startswith("PII_KEYS=")]
        new, *rest = line.removeprefix("PII_KEYS=").split(",")
        assert ",".join(rest) == os.environ["PII_KEYS"]  # the old keys keep their order
        assert "veilig keys pii reseal" in out
        # The hosts do not have the new key yet: nothing was re-sealed with it.
        assert (
            await triage.fetchval(
                "SELECT report->>'reporter_sealed' FROM incidents WHERE incident_id = $1", incident
            )
            == contact
        )
        audit = await triage.fetchrow("SELECT operation, key_id, resealed FROM ops.key_operations")
        assert (audit["operation"], audit["key_id"]) == ("pii-rotate", fingerprint(new.encode()))
        assert json.loads(audit["resealed"]) == {}
    finally:
        await triage.close()
