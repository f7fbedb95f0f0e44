"""One realistic, fixed example of every event: the AsyncAPI examples and the tests' fixtures.

The story: on a Friday night a burglary in progress near the Grote Markt is reported by the
police, triaged as P1, reported a second time, acknowledged and resolved. Names, numbers and ids
are made up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from schemas.events import (
    CategoryProbability,
    Event,
    Flags,
    IncidentAcknowledged,
    IncidentMerged,
    IncidentPriorityChanged,
    IncidentReclassified,
    IncidentReported,
    IncidentResolved,
    IncidentStatusChanged,
    IncidentTriaged,
    IncidentWithdrawalRequested,
    Location,
    NotificationAcknowledged,
    NotificationDelivered,
    NotificationDispatched,
    NotificationEscalated,
    NotificationFailed,
    Recipient,
)
from schemas.taxonomy import Profile

INCIDENT = UUID("5f0c2a8e-3c1b-4e7a-9d2f-0a1b2c3d4e5f")
DUPLICATE = UUID("7a9d1e22-6b4c-4f3e-8a1d-2b3c4d5e6f70")
MESSAGE = UUID("c3e1f5a7-9b2d-4c6e-8f0a-1b2c3d4e5f60")
T0 = datetime(2025, 3, 28, 22, 41, 5, tzinfo=UTC)  # Friday 23:41 in Haarlem


def _event_id(n: int) -> UUID:
    return UUID(int=0x9E0B0000_0000_4000_8000_000000000000 + n)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


_EXAMPLES: tuple[Event, ...] = (
    IncidentReported(
        event_id=_event_id(1),
        incident_id=INCIDENT,
        occurred_at=_at(-3),
        recorded_at=_at(0),
        producer="intake",
        partner="politie",
        channel="http",
        external_id="MK-2025-004711",
        description="Twee personen klimmen via de achterkant een woning binnen.",
        category_hint="hic.woninginbraak",
        location=Location(
            lat=52.3812,
            lon=4.6366,
            address="Grote Markt 2, Haarlem",
            buurt_code="BU03920102",
            wijk_code="WK039201",
            resolution="point",
            inside_haarlem=True,
        ),
        flags=Flags(in_progress=True),
        reporter_sealed="gAAAAABn5yXJ0000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000==",
        attributes={"source_system": "meldkamer", "persons_seen": 2},
    ),
    IncidentTriaged(
        event_id=_event_id(2),
        incident_id=INCIDENT,
        occurred_at=_at(0.1),
        recorded_at=_at(0.1),
        producer="triage",
        category="hic.woninginbraak",
        priority="P1",
        confidence=0.93,
        reasons=("term 'binnen' + 'woning' -> hic.woninginbraak", "in progress: P2 -> P1"),
        top_categories=(
            CategoryProbability(category="hic.woninginbraak", probability=0.93),
            CategoryProbability(category="verdachte-situatie", probability=0.05),
            CategoryProbability(category="vandalisme", probability=0.02),
        ),
        needs_review=False,
        buurt_code="BU03920102",
        wijk_code="WK039201",
        acknowledge_by=_at(2.1),
        handle_by=_at(60.1),
        recipients=(
            Recipient(code="politie.wijkagent.WK039201", profile=Profile.FULL),
            Recipient(code="politie.meldkamer", profile=Profile.FULL),
        ),
    ),
    IncidentMerged(
        event_id=_event_id(3),
        incident_id=INCIDENT,
        occurred_at=_at(4),
        recorded_at=_at(4),
        producer="triage",
        duplicate_incident_id=DUPLICATE,
        report_count=2,
        reason="same address within 10 minutes",
    ),
    IncidentReclassified(
        event_id=_event_id(4),
        incident_id=DUPLICATE,
        occurred_at=_at(5),
        recorded_at=_at(5),
        producer="triage",
        old_category="verdachte-situatie",
        new_category="hic.woninginbraak",
        actor="triage.staff.0042",
        reason="tweede melding beschrijft dezelfde inbraak",
    ),
    IncidentPriorityChanged(
        event_id=_event_id(5),
        incident_id=DUPLICATE,
        occurred_at=_at(5),
        recorded_at=_at(5),
        producer="triage",
        old_priority="P3",
        new_priority="P1",
        acknowledge_by=_at(7),
        handle_by=_at(65),
        reason="reclassified as burglary in progress",
    ),
    IncidentStatusChanged(
        event_id=_event_id(6),
        incident_id=INCIDENT,
        occurred_at=_at(6),
        recorded_at=_at(6),
        producer="triage",
        old_status="acknowledged",
        new_status="in_progress",
        actor="triage.staff.0042",
    ),
    IncidentAcknowledged(
        event_id=_event_id(7),
        incident_id=INCIDENT,
        occurred_at=_at(1.2),
        recorded_at=_at(1.3),
        producer="triage",
        recipient="politie.meldkamer",
        acknowledged_by="centralist 17",
        message_id=MESSAGE,
    ),
    IncidentResolved(
        event_id=_event_id(8),
        incident_id=INCIDENT,
        occurred_at=_at(48),
        recorded_at=_at(48.5),
        producer="triage",
        outcome="handled",
        resolved_by="politie.meldkamer",
        note="Twee verdachten aangehouden.",
    ),
    # Not part of the Friday-night story's ending: a partner withdrawing another report.
    IncidentWithdrawalRequested(
        event_id=_event_id(14),
        incident_id=DUPLICATE,
        occurred_at=_at(9),
        recorded_at=_at(9),
        producer="intake",
        partner="buurtapp",
        external_id="BA-88121",
        reason="Per ongeluk dubbel gemeld.",
    ),
    NotificationDispatched(
        event_id=_event_id(9),
        incident_id=INCIDENT,
        occurred_at=_at(0.2),
        recorded_at=_at(0.2),
        producer="notify",
        message_id=MESSAGE,
        recipient="politie.meldkamer",
        channel="cap",
        profile=Profile.FULL,
        priority="P1",
        attempt=1,
        cap_identifier="nl.haarlem.veilig.5f0c2a8e.1",
        cap_msg_type="Alert",
        acknowledge_by=_at(2.1),
    ),
    NotificationDelivered(
        event_id=_event_id(10),
        incident_id=INCIDENT,
        occurred_at=_at(0.25),
        recorded_at=_at(0.25),
        producer="notify",
        message_id=MESSAGE,
        recipient="politie.meldkamer",
        channel="cap",
        attempt=1,
        status_code=202,
    ),
    NotificationFailed(
        event_id=_event_id(11),
        incident_id=INCIDENT,
        occurred_at=_at(0.3),
        recorded_at=_at(0.3),
        producer="notify",
        message_id=UUID("d4f2a6b8-0c3e-4d7f-9a1b-2c3d4e5f6071"),
        recipient="politie.wijkagent.WK039201",
        channel="webhook",
        attempt=1,
        error="HTTP 503 Service Unavailable",
        status_code=503,
        final=False,
        next_attempt_at=_at(0.8),
    ),
    NotificationEscalated(
        event_id=_event_id(12),
        incident_id=INCIDENT,
        occurred_at=_at(2.1),
        recorded_at=_at(2.1),
        producer="notify",
        message_id=UUID("d4f2a6b8-0c3e-4d7f-9a1b-2c3d4e5f6071"),
        recipient="politie.wijkagent.WK039201",
        level=1,
        reason="not_acknowledged",
        escalated_to=("politie.meldkamer",),
        deadline=_at(2.1),
    ),
    NotificationAcknowledged(
        event_id=_event_id(13),
        incident_id=INCIDENT,
        occurred_at=_at(1.2),
        recorded_at=_at(1.2),
        producer="notify",
        message_id=MESSAGE,
        recipient="politie.meldkamer",
        channel="cap",
        acknowledged_by="centralist 17",
    ),
)

EXAMPLES: dict[type[Event], Event] = {type(e): e for e in _EXAMPLES}
"""One example per event class."""
