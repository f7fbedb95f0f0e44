"""Prevention signals (zorgsignaal) to the care partner.

Triage raises ``IncidentZorgsignaalRaised`` on the incident whose report made the count at a
spot; notify tells the signal's recipient about that incident with the **operational**
profile (what happened and where; never the reporter's contact details, whatever profile
the recipient has otherwise), the signal in words as the message's reason. It is not asked to
acknowledge: the signal is not the incident, whose handling an acknowledgement would stop.
A recipient not told of the incident before stays involved until it closes (audience source
``signal``).
"""

from __future__ import annotations

import asyncpg

from schemas.events import IncidentZorgsignaalRaised
from schemas.taxonomy import Profile, taxonomy
from services.notify import store
from services.notify.store import Message, Notify


class MissingIncident(RuntimeError):
    """A signal about an incident notify never saw reported and triaged (retried, then
    dead-lettered with this reason)."""


def signal_text(event: IncidentZorgsignaalRaised) -> str:
    labels = ", ".join(taxonomy().category(c).label_nl for c in event.categories)
    earlier = ", ".join(str(i) for i in event.incidents[:-1])
    place = "op hetzelfde adres" if event.matched_on == "address" else "op dezelfde plek"
    return (
        f"Zorgsignaal: {len(event.incidents)} meldingen ({labels}) {place} binnen "
        f"{event.window_days} dagen; eerdere incidenten: {earlier}"
    )


async def on_zorgsignaal(
    conn: asyncpg.Connection, notify: Notify, event: IncidentZorgsignaalRaised
) -> None:
    incident = await store.load_incident(conn, event.incident_id)
    if incident.reported is None or incident.triaged is None:
        raise MissingIncident(f"zorgsignaal about incident {event.incident_id}, never triaged")
    message = Message(
        store.message_id(event.event_id, event.incident_id, event.recipient),
        event.recipient,
        Profile.OPERATIONAL,
        "alert",
        signal_text(event),
    )
    told = (await store.active_audience(conn, event.incident_id)).get(event.recipient)
    signal = await store.draft(
        conn, notify, incident, message, source="signal", acknowledge_by=None, ask=False
    )
    await store.queue(conn, [signal])
    if told is not None:
        # Already told by triage's decision (care gets neighbour nuisance and E33): its later
        # messages about the incident keep the profile the decision gave it.
        await conn.execute(
            "UPDATE audience SET profile = $3 WHERE incident_id = $1 AND recipient = $2",
            event.incident_id,
            event.recipient,
            told.profile.value,
        )
