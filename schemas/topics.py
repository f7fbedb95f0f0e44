"""Every Kafka topic of the platform, declared once.

This is the single source for the topic admin (``services.common.topics``), the AsyncAPI
document and the services' subscribers. Partition count, replication factor and
``min.insync.replicas`` are the production intent; locally the replication settings are
lowered by configuration (``KAFKA_REPLICATION_FACTOR`` / ``KAFKA_MIN_INSYNC_REPLICAS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS
DLQ_SUFFIX = "dlq"


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    key: str
    description: str
    partitions: int = 12
    retention_ms: int = 30 * DAY_MS
    cleanup_policy: str = "delete"
    publishers: tuple[str, ...] = ()
    subscribers: tuple[str, ...] = ()
    extra_config: dict[str, str] = field(default_factory=dict)
    # A priority lane carries copies (same event ids) of the events of this topic.
    copies_of: str | None = None
    # One topic per partner, ``<name>.<partner code>``, each created when the partner is given
    # Kafka access: the topic a record arrived on says which partner sent it, and only that
    # partner's principal may write it (docs/decisions/0011).
    per_partner: bool = False

    def of_partner(self, code: str) -> str:
        """The name (without the settings' prefix) of ``code``'s topic of this family."""
        if not self.per_partner:
            raise ValueError(f"{self.name} is not a per-partner topic")
        if code == DLQ_SUFFIX:
            raise ValueError(f"{code!r} names the dead-letter topic, not a partner")
        return f"{self.name}.{code}"

    @property
    def dlq(self) -> str:
        return f"{self.name}.{DLQ_SUFFIX}"


INCIDENT_SUBMISSIONS = Topic(
    name="incident-submissions",
    key="external_id",
    description="Raw reports produced directly by partner systems (JSON), one topic per "
    "partner (incident-submissions.<partner code>): the topic says who sent a report, never "
    "its key or headers, and only that partner's principal may write it.",
    per_partner=True,
    # Raw submissions hold contact details and text in the clear: kept only as long as intake
    # needs to accept them (seconds; hours cover an outage), in hour segments so that Kafka
    # can delete them on time (docs/decisions/0010).
    retention_ms=6 * HOUR_MS,
    extra_config={"segment.ms": str(HOUR_MS)},
    publishers=("partners",),
    subscribers=("intake",),
)
INCIDENT_EVENTS = Topic(
    name="incident-events",
    key="incident id",
    description="Every lifecycle event of an incident; one key, one partition, total order.",
    retention_ms=-1,  # the event log is the source of replays and rebuilds
    publishers=("intake", "triage"),
    subscribers=("intake", "triage", "notify", "analytics"),
)
NOTIFICATION_EVENTS = Topic(
    name="notification-events",
    key="incident id",
    description="Dispatched, delivered, failed, escalated and acknowledged notifications.",
    retention_ms=-1,
    publishers=("notify",),
    subscribers=("triage", "analytics"),
)

INCIDENT_URGENT = Topic(
    name="incident-events-urgent",
    key="incident id",
    description="The urgent lane: copies, with the same event ids, of the events of incidents "
    "that are (or may well be) P1 or P2, so that triage and notify reach them without waiting "
    "behind a backlog on incident-events. incident-events stays the log of record; a "
    "consumer's inbox drops whichever copy comes second (docs/decisions/0006).",
    retention_ms=7 * DAY_MS,
    publishers=("intake", "triage"),
    subscribers=("triage", "notify"),
    copies_of=INCIDENT_EVENTS.name,
)

SAFETY_PLANS = Topic(
    name="safety-plans",
    key="wijk code",
    description="Every change of a wijk's safety plan (wijkveiligheidsplan): adopted, changed, "
    "ended; one key per wijk, so its changes keep their order.",
    partitions=3,
    retention_ms=-1,  # the plans' history: analytics rebuilds its view of them from here
    publishers=("triage",),
    subscribers=("analytics",),
)

MAIN_TOPICS: tuple[Topic, ...] = (
    INCIDENT_SUBMISSIONS,
    INCIDENT_EVENTS,
    NOTIFICATION_EVENTS,
    INCIDENT_URGENT,
    SAFETY_PLANS,
)


def dead_letter(topic: Topic) -> Topic:
    """The dead-letter topic of ``topic``: what its consumers could not process."""
    return Topic(
        name=topic.dlq,
        key=topic.key,
        description=f"Messages from {topic.name} that a consumer could not process, sealed "
        "with the PII key; why and from where is in the headers (x-dlq-*).",
        partitions=3,
        retention_ms=90 * DAY_MS,
        publishers=topic.subscribers,
        subscribers=("operators",),
    )


ALL_TOPICS: tuple[Topic, ...] = MAIN_TOPICS + tuple(dead_letter(t) for t in MAIN_TOPICS)
# The topics that exist under their declared name (a per-partner family is one topic per
# partner, made when the partner is given Kafka access: services.common.kafka_access).
CLUSTER_TOPICS: tuple[Topic, ...] = tuple(t for t in ALL_TOPICS if not t.per_partner)
