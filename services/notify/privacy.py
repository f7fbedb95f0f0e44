"""Notify's copy of a report's personal data, erased when triage says so (docs/decisions/0010).

On ``IncidentPersonalDataErased`` the stored report keeps only what is not personal
(``schemas.erasure.erase_report``): later messages about the incident (an update, a cancel, an
escalation page) carry no text, exact location or contact. The messages already rendered hold
them too: their bodies are dropped, so one still pending fails as "content purged" instead of
sending what must be gone, and nothing about it can be read from notify any more.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from schemas.erasure import erase_report
from schemas.events import IncidentReported


async def erase(conn: asyncpg.Connection, incident_id: UUID) -> None:
    """Erase notify's copies of the incident's personal data (caller's transaction)."""
    reported = await conn.fetchval(
        "SELECT reported FROM incidents WHERE incident_id = $1 FOR UPDATE", incident_id
    )
    if reported is not None:
        erased = erase_report(IncidentReported.model_validate_json(reported))
        await conn.execute(
            "UPDATE incidents SET reported = $2::jsonb, updated_at = now() WHERE incident_id = $1",
            incident_id,
            erased.model_dump_json(),
        )
    await conn.execute("UPDATE deliveries SET body_sealed = '' WHERE incident_id = $1", incident_id)
