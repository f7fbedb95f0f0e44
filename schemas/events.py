"""The events of Veilig Haarlem: one immutable pydantic model per fact, named in the past tense.

Every event carries the common envelope fields of :class:`Event`, a CloudEvents type
(``ce_type``, ``nl.haarlem.veilig.<incident|notification|safety-plan>.<fact>.v<version>``) and
the topic it travels on. Incident and notification events are about an incident (its id is
their subject and Kafka key); safety-plan events are about a wijk's plan (the wijk code).
:data:`REGISTRY` maps ``ce_type`` to the class; :mod:`schemas.envelope` puts events on and takes
them off the wire.

Fields that not every recipient may see are marked with :func:`schemas.disclosure.restricted`;
:func:`schemas.disclosure.minimise` applies the marks. A new version of an event is a new class
with a new ``ce_type`` (``.v2``); the old class stays for as long as the log holds its events.

Building an event with an unknown field is an error (a misspelt field must not vanish), but
:func:`schemas.envelope.decode` ignores unknown fields (tolerant reader): a consumer one release
behind must still accept an event that gained an optional field. For the same reason the
published JSON Schemas leave ``additionalProperties`` open.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from schemas.disclosure import restricted
from schemas.taxonomy import PLACEHOLDERS, Priority, Profile, taxonomy
from schemas.topics import INCIDENT_EVENTS, NOTIFICATION_EVENTS, SAFETY_PLANS, Topic

CE_TYPE_PREFIX = "nl.haarlem.veilig"
_CE_TYPE = re.compile(
    rf"{re.escape(CE_TYPE_PREFIX)}\.(incident|notification|safety-plan)\."
    r"([a-z]+(?:-[a-z]+)*)\.v([1-9]\d*)"
)
_FAMILY_TOPIC: dict[str, Topic] = {
    "incident": INCIDENT_EVENTS,
    "notification": NOTIFICATION_EVENTS,
    "safety-plan": SAFETY_PLANS,
}

Producer = Literal["intake", "triage", "notify", "analytics"]
PartnerKind = Literal[
    "police",
    "fire",
    "enforcement",
    "school",
    "horeca",
    "ov",
    "care",
    "sus-team",
    "buurtpreventie",
    "buurtpapa",
    "citizen",
    "open311",
    "other",
]
"""The kinds of reporting partners (DOMAIN.md "People who use it"); routing rules match on it."""
Channel = Literal["http", "open311", "kafka"]
NotificationChannel = Literal["webhook", "cap", "email"]
IncidentStatus = Literal[
    "reported",
    "triaged",
    "acknowledged",
    "in_progress",
    "on_hold",
    "reopened",
    "merged",
    "resolved",
    "cancelled",
]

OPERATIONAL = restricted(Profile.OPERATIONAL)
OPERATIONAL_PERSONAL = restricted(Profile.OPERATIONAL, personal=True)
FULL_PERSONAL = restricted(Profile.FULL, personal=True)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""Timezone-aware (naive is rejected), normalised to UTC, so it serialises with 'Z'."""


def _known_category(code: str) -> str:
    try:
        taxonomy().category(code)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return code


def _known_recipient(code: str) -> str:
    try:
        taxonomy().recipient(code)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return code


CategoryCode = Annotated[
    str,
    AfterValidator(_known_category),
    WithJsonSchema({"type": "string", "enum": list(taxonomy().category_codes)}),
]
"""A category code of the taxonomy (``hic.woninginbraak``, ``overig``, ...)."""

# Recipient codes are checked against the taxonomy at run time; the schema stays a plain
# string so that adding a recipient to the taxonomy is not a schema change.
RecipientCode = Annotated[str, StringConstraints(max_length=100), AfterValidator(_known_recipient)]
"""A concrete recipient code of the taxonomy (``politie.wijkagent.WK039201``, ...)."""

BuurtCode = Annotated[str, StringConstraints(pattern=r"^BU\d{8}$")]
WijkCode = Annotated[str, StringConstraints(pattern=r"^WK\d{6}$")]
PartnerCode = Annotated[str, StringConstraints(pattern=rf"^{PLACEHOLDERS['partner']}$")]
Probability = Annotated[float, Field(ge=0, le=1)]
AttributeValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool
SchemaVersion1 = Annotated[
    Literal[1], Field(description="Version of the event's schema: the vN at the end of ce_type.")
]
SchemaVersion2 = Annotated[
    Literal[2], Field(description="Version of the event's schema: the vN at the end of ce_type.")
]


def _open_to_additions(schema: dict[str, Any]) -> None:
    # Readers ignore fields they do not know; the published schema says the same.
    schema.pop("additionalProperties", None)


class Body(BaseModel):
    """Base of every event and nested part: immutable, documented, JSON-safe numbers."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        json_schema_extra=_open_to_additions,
    )


# --- nested parts ----------------------------------------------------------------------------


class Location(Body):
    """Where the incident is, and how the platform resolved that to buurt and wijk."""

    lat: float | None = Field(default=None, ge=-90, le=90, json_schema_extra=OPERATIONAL)
    """Latitude, WGS84 decimal degrees; given together with lon."""
    lon: float | None = Field(default=None, ge=-180, le=180, json_schema_extra=OPERATIONAL)
    """Longitude, WGS84 decimal degrees; given together with lat."""
    address: str | None = Field(default=None, max_length=500, json_schema_extra=OPERATIONAL)
    """Address text as reported; never geocoded by guessing."""
    buurt_code: BuurtCode | None = None
    """CBS buurt code (``BU03920102``), when known."""
    wijk_code: WijkCode | None = None
    """CBS wijk code (``WK039201``), when known; always the wijk of buurt_code."""
    resolution: Literal["point", "buurt", "address_unresolved", "none"]
    """What the buurt and wijk were resolved from: a point, a given buurt code, an address
    that was not resolved, or nothing."""
    inside_haarlem: bool | None = None
    """False for a location outside Haarlem (kept, not dropped); None when unknown."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon are given together or not at all")
        if self.resolution == "point" and self.lat is None:
            raise ValueError("resolution 'point' needs lat and lon")
        if self.resolution == "buurt" and self.buurt_code is None:
            raise ValueError("resolution 'buurt' needs buurt_code")
        if self.buurt_code and self.wijk_code and self.wijk_code[2:] != self.buurt_code[2:8]:
            raise ValueError(f"wijk_code {self.wijk_code} is not the wijk of {self.buurt_code}")
        return self


class Flags(Body):
    """Circumstances that raise the priority (DOMAIN.md "Priorities")."""

    in_progress: bool = False
    """It is happening now."""
    weapon: bool = False
    """A weapon is involved."""
    injuries: bool = False
    """Someone is injured."""
    public_task_victim: bool = False
    """The victim is a worker with a public task (VPT)."""
    victim_role: str | None = Field(default=None, max_length=100, json_schema_extra=OPERATIONAL)
    """The public-task role of the victim (teacher, BOA, bus driver, ...), if any."""


class Reporter(Body):
    """Contact details of the person who reported: personal data, full profile only."""

    name: str | None = Field(default=None, max_length=200, json_schema_extra=FULL_PERSONAL)
    """Name of the reporter."""
    phone: str | None = Field(default=None, max_length=50, json_schema_extra=FULL_PERSONAL)
    """Phone number of the reporter."""
    email: str | None = Field(default=None, max_length=254, json_schema_extra=FULL_PERSONAL)
    """E-mail address of the reporter."""


class CategoryProbability(Body):
    """One candidate category of the classifier."""

    category: CategoryCode
    """Candidate category code."""
    probability: Probability
    """The classifier's probability for it, 0..1."""


class Recipient(Body):
    """A recipient of an incident and the disclosure profile it is served with."""

    code: RecipientCode
    """Recipient code of the taxonomy."""
    profile: Profile
    """Disclosure profile the recipient gets (full, operational, coarse)."""


# --- the common envelope ---------------------------------------------------------------------


class Event(Body):
    """Fields every event carries. Abstract: concrete events are in :data:`REGISTRY`."""

    ce_type: ClassVar[str]
    topic: ClassVar[Topic]

    event_id: UUID
    """Unique id of this event; the CloudEvents id. Consumers deduplicate on it."""
    occurred_at: UtcDatetime
    """When the fact happened; the CloudEvents time."""
    recorded_at: UtcDatetime
    """When the producing service recorded the fact."""
    producer: Producer
    """The service that produced the event; must publish on the event's topic."""
    schema_version: int
    """Version of this event's schema; the same as the ``.vN`` of its ce_type."""

    @model_validator(mode="after")
    def _producer_publishes_topic(self) -> Self:
        if self.producer not in self.topic.publishers:
            raise ValueError(
                f"producer {self.producer!r} does not publish on {self.topic.name} "
                f"(publishers: {', '.join(self.topic.publishers)})"
            )
        return self

    @property
    def subject(self) -> str:
        """What the event is about: the CloudEvents subject and the Kafka key."""
        raise NotImplementedError


class AboutIncident(Event):
    """An event about one incident."""

    incident_id: UUID
    """The incident the event is about; the Kafka key and the CloudEvents subject."""

    @property
    def subject(self) -> str:
        return str(self.incident_id)


class IncidentEvent(AboutIncident):
    topic: ClassVar[Topic] = INCIDENT_EVENTS


class NotificationEvent(AboutIncident):
    topic: ClassVar[Topic] = NOTIFICATION_EVENTS

    message_id: UUID
    """The notification: one per incident, recipient and update; the same on every attempt."""
    recipient: RecipientCode
    """Recipient code of the taxonomy."""


EventClass = TypeVar("EventClass", bound=type[Event])

REGISTRY: dict[str, type[Event]] = {}
"""ce_type -> event class, every version the platform can read."""


def register(cls: EventClass) -> EventClass:
    """Add an event class to :data:`REGISTRY`, checking its type name, topic and version."""
    match = _CE_TYPE.fullmatch(cls.ce_type)
    if match is None:
        raise TypeError(
            f"{cls.__name__}: ce_type {cls.ce_type!r} does not match {_CE_TYPE.pattern}"
        )
    family, _fact, version = match.groups()
    if cls.topic is not _FAMILY_TOPIC[family]:
        raise TypeError(f"{cls.__name__}: {family} events belong on {_FAMILY_TOPIC[family].name}")
    if cls.model_fields["schema_version"].default != int(version):
        raise TypeError(f"{cls.__name__}: schema_version default must be {version}")
    if cls.ce_type in REGISTRY:
        raise TypeError(f"{cls.__name__}: {cls.ce_type} is already registered")
    REGISTRY[cls.ce_type] = cls
    return cls


def _different(a: Any, b: Any, what: str) -> None:
    if a == b:
        raise ValueError(f"{what}: old and new are the same ({a})")


# --- incident events -------------------------------------------------------------------------


@register
class IncidentReported(IncidentEvent):
    """A partner reported an incident and intake accepted it: the first fact of an incident."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.reported.v1"
    schema_version: SchemaVersion1 = 1

    occurred_at: UtcDatetime
    """When the incident happened as the partner reported it (else when it was received)."""
    partner: PartnerCode = Field(json_schema_extra=OPERATIONAL)
    """Code of the partner system that reported (a small partner could identify the reporter)."""
    partner_kind: PartnerKind | None = Field(default=None, json_schema_extra=OPERATIONAL)
    """What kind of partner reported (police, fire, school, ov, buurtpreventie, citizen, ...):
    routing rules match on it."""
    channel: Channel
    """How the report came in: partner HTTP API, Open311, or the Kafka submissions topic."""
    external_id: str = Field(min_length=1, max_length=200, json_schema_extra=OPERATIONAL)
    """The partner's own id of the report; with partner the idempotency key."""
    description: str = Field(max_length=4000, json_schema_extra=OPERATIONAL)
    """Free text of the report. May contain names: never for coarse recipients."""
    category_hint: CategoryCode | None = None
    """The category the partner suggested, if any; triage decides."""
    location: Location
    """Where it happened."""
    flags: Flags = Field(default_factory=Flags)
    """Circumstances that raise the priority."""
    reporter_sealed: str | None = Field(
        default=None, max_length=4000, json_schema_extra=FULL_PERSONAL
    )
    """The reporter's contact details (a Reporter as JSON) sealed with the platform's PII key.
    This is how they travel and are stored: dropping the key purges them everywhere."""
    reporter: Reporter | None = Field(default=None, json_schema_extra=FULL_PERSONAL)
    """The reporter's contact details in the clear, only where they were opened for a full
    recipient; never published in the clear."""
    attributes: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)], AttributeValue
    ] = Field(default_factory=dict, max_length=50, json_schema_extra=OPERATIONAL)
    """Partner-specific extra data (Open311 attributes and the like)."""


class SealedPersonal(Body):
    """The personal part of a report, sealed with a key of the report's own, which the platform
    keeps wrapped with the key of its period (docs/decisions/0010): once an erasure deletes the
    report's key or the purge destroys the period's, it is unreadable wherever it was copied."""

    key_id: UUID
    """The period key that wraps the report's key (``ops.period_keys``, ``ops.report_keys``)."""
    period: date
    """The period key's period: the UTC day the platform received the report."""
    ciphertext: str = Field(min_length=1, max_length=60_000, json_schema_extra=FULL_PERSONAL)
    """Fernet token of the JSON object of the report's ``description``, ``location``,
    ``flags``, ``attributes`` and ``reporter_sealed`` as they were."""


@register
class IncidentReportedSealed(IncidentReported):
    """``incident.reported`` as intake publishes it: the report without its personal part
    (as :func:`schemas.erasure.erase_report` leaves a report) and that part sealed beside it.
    A consumer opens it (services/common/period_keys.py ``open_report``); when the key is
    destroyed the report reads as erased."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.reported.v2"
    schema_version: SchemaVersion2 = 2  # type: ignore[assignment]

    personal_sealed: SealedPersonal = Field(json_schema_extra=FULL_PERSONAL)
    """The personal part of the report, sealed."""

    @model_validator(mode="after")
    def _nothing_personal_in_the_clear(self) -> Self:
        where = self.location
        clear = [
            name
            for name, value in (
                ("description", self.description),
                ("location.lat", where.lat),
                ("location.address", where.address),
                ("flags.victim_role", self.flags.victim_role),
                ("attributes", self.attributes),
                ("reporter_sealed", self.reporter_sealed),
                ("reporter", self.reporter),
            )
            if value not in (None, "", {})
        ]
        if clear:
            raise ValueError(f"personal fields in the clear beside personal_sealed: {clear}")
        return self


@register
class IncidentTriaged(IncidentEvent):
    """Triage classified the incident, set its priority and deadlines and chose recipients."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.triaged.v1"
    schema_version: SchemaVersion1 = 1

    category: CategoryCode
    """The category triage chose."""
    priority: Priority
    """P1 (acute) .. P4 (planned)."""
    confidence: Probability
    """Confidence of the classification, 0..1."""
    reasons: tuple[Annotated[str, StringConstraints(max_length=500)], ...] = Field(
        default=(), max_length=20, json_schema_extra=OPERATIONAL
    )
    """Why: matched rules and terms, priority raises. May quote the report's text."""
    top_categories: tuple[CategoryProbability, ...] = Field(default=(), max_length=3)
    """The classifier's best three candidates, most probable first."""
    needs_review: bool
    """A human must look at it (low confidence, category overig, ...)."""
    buurt_code: BuurtCode | None = None
    """The incident's buurt, when known."""
    wijk_code: WijkCode | None = None
    """The incident's wijk, when known."""
    acknowledge_by: UtcDatetime
    """A recipient must acknowledge before this, else it escalates (P1, P2)."""
    handle_by: UtcDatetime
    """The incident must be handled before this."""
    recipients: tuple[Recipient, ...] = Field(default=(), json_schema_extra=OPERATIONAL)
    """Who is informed, each with its disclosure profile."""
    report_count: int = Field(default=1, ge=1)
    """Independent reports of this incident so far."""


@register
class IncidentMerged(IncidentEvent):
    """A later incident was found to be a duplicate and linked to this (the first) incident."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.merged.v1"
    schema_version: SchemaVersion1 = 1

    duplicate_incident_id: UUID
    """The incident merged into incident_id; it is closed as a duplicate."""
    report_count: int = Field(ge=2)
    """Independent reports of incident_id after the merge."""
    actor: str | None = Field(default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Triage staff member who merged; None when merged automatically."""
    reason: str | None = Field(default=None, max_length=1000, json_schema_extra=OPERATIONAL)
    """Why the incidents are the same."""

    @model_validator(mode="after")
    def _not_itself(self) -> Self:
        if self.duplicate_incident_id == self.incident_id:
            raise ValueError("an incident cannot be merged into itself")
        return self


@register
class IncidentReclassified(IncidentEvent):
    """A person changed the incident's category."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.reclassified.v1"
    schema_version: SchemaVersion1 = 1

    old_category: CategoryCode
    """The category before."""
    new_category: CategoryCode
    """The category now."""
    actor: str = Field(min_length=1, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Triage staff member who reclassified."""
    reason: str | None = Field(default=None, max_length=1000, json_schema_extra=OPERATIONAL)
    """Why."""

    @model_validator(mode="after")
    def _changed(self) -> Self:
        _different(self.old_category, self.new_category, "category")
        return self


@register
class IncidentPriorityChanged(IncidentEvent):
    """The incident's priority went up or down, with new deadlines."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.priority-changed.v1"
    schema_version: SchemaVersion1 = 1

    old_priority: Priority
    """The priority before."""
    new_priority: Priority
    """The priority now."""
    acknowledge_by: UtcDatetime
    """New acknowledge deadline."""
    handle_by: UtcDatetime
    """New handle deadline."""
    actor: str | None = Field(default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Triage staff member who changed it; None for an automatic change (more reports)."""
    reason: str | None = Field(default=None, max_length=1000, json_schema_extra=OPERATIONAL)
    """Why."""

    @model_validator(mode="after")
    def _changed(self) -> Self:
        _different(self.old_priority, self.new_priority, "priority")
        return self


@register
class IncidentStatusChanged(IncidentEvent):
    """The incident's status changed.

    Transitions that are facts of their own come as those events (triaged, merged,
    acknowledged, resolved); this one carries the others (in_progress, on_hold, reopened,
    cancelled).
    """

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.status-changed.v1"
    schema_version: SchemaVersion1 = 1

    old_status: IncidentStatus
    """The status before."""
    new_status: IncidentStatus
    """The status now."""
    actor: str | None = Field(default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Who changed it; None for an automatic change."""
    reason: str | None = Field(default=None, max_length=1000, json_schema_extra=OPERATIONAL)
    """Why."""

    @model_validator(mode="after")
    def _changed(self) -> Self:
        _different(self.old_status, self.new_status, "status")
        return self


@register
class IncidentAssigned(IncidentEvent):
    """Triage staff gave the incident an owner (claimed it for themselves or assigned it to a
    colleague), or took the owner away."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.assigned.v1"
    schema_version: SchemaVersion1 = 1

    owner: str | None = Field(default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """The staff member who owns the incident now; None: nobody."""
    previous_owner: str | None = Field(
        default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL
    )
    """The owner before, if any."""
    actor: str | None = Field(default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Who assigned it (the owner, for a claim)."""
    reason: str | None = Field(default=None, max_length=1000, json_schema_extra=OPERATIONAL)
    """Why, if said."""


@register
class IncidentDeadlineMissed(IncidentEvent):
    """The incident was not handled before its handle-by deadline. Raised by triage once per
    deadline (a new deadline after a priority change can be missed again); notify pages the
    escalation target of each recipient that was to act on it, once."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.deadline-missed.v1"
    schema_version: SchemaVersion1 = 1

    handle_by: UtcDatetime
    """The deadline that passed."""
    priority: Priority
    """The incident's priority, which set the deadline."""
    status: IncidentStatus
    """Where the incident stood when the deadline passed (an open status)."""


@register
class IncidentAcknowledged(IncidentEvent):
    """A recipient took responsibility for the incident; escalation stops."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.acknowledged.v1"
    schema_version: SchemaVersion1 = 1

    recipient: RecipientCode
    """The recipient that acknowledged."""
    acknowledged_by: str | None = Field(
        default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL
    )
    """The person at the recipient, if the recipient said."""
    message_id: UUID | None = None
    """The notification that was acknowledged, if it came through one."""


@register
class IncidentResolved(IncidentEvent):
    """The incident is closed with an outcome."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.resolved.v1"
    schema_version: SchemaVersion1 = 1

    outcome: Literal["handled", "no_action_needed", "referred", "unfounded"]
    """How it ended: handled, nothing to do, referred elsewhere, or the report was unfounded."""
    resolved_by: RecipientCode | None = None
    """The recipient that handled it, if one did."""
    actor: str | None = Field(default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Who closed it."""
    note: str | None = Field(default=None, max_length=2000, json_schema_extra=OPERATIONAL)
    """Closing note."""


@register
class IncidentWithdrawalRequested(IncidentEvent):
    """The reporting partner withdrew its report (intake); triage decides what it does.

    Triage applies it through the workflow: an open incident becomes cancelled, announced as
    IncidentStatusChanged, which makes notify cancel every message. A resolved or merged
    incident, or one that other partners reported too, stays as it is (a history entry says
    why).
    """

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.withdrawal-requested.v1"
    schema_version: SchemaVersion1 = 1

    partner: PartnerCode = Field(json_schema_extra=OPERATIONAL)
    """Code of the partner system that reported the incident and withdraws it."""
    external_id: str = Field(min_length=1, max_length=200, json_schema_extra=OPERATIONAL)
    """The partner's own id of the report."""
    reason: str = Field(min_length=1, max_length=1000, json_schema_extra=OPERATIONAL)
    """Why the partner withdraws it. Free text: may contain names."""


@register
class IncidentZorgsignaalRaised(IncidentEvent):
    """Care-relevant reports keep coming back to one spot: a prevention signal for care.

    Raised by the incident whose report made the count (``incident_id``), once per window and
    spot; the care partner (Zorg- en Veiligheidshuis) is told, without reporter contacts.
    """

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.zorgsignaal-raised.v1"
    schema_version: SchemaVersion1 = 1

    signal_id: UUID
    """The signal: one per spot and window."""
    incidents: tuple[UUID, ...] = Field(min_length=2, max_length=100)
    """The incidents at the spot in the window, oldest first; incident_id is the last."""
    categories: tuple[CategoryCode, ...] = Field(min_length=1)
    """Their categories, each once."""
    matched_on: Literal["point", "address"]
    """How the spot was recognised: points within the distance, or the same address text."""
    window_days: int = Field(ge=1)
    """The window the reports fell in, in days."""
    buurt_code: BuurtCode | None = None
    """The spot's buurt, when known."""
    wijk_code: WijkCode | None = None
    """The spot's wijk, when known."""
    recipient: RecipientCode
    """Who is told: the care partner."""


@register
class IncidentPersonalDataErased(IncidentEvent):
    """The personal data of an incident's report (reporter contact, description, exact
    location) is erased: every service erases its copy (``schemas.erasure.erase_report``).
    Category, buurt, times, priority and counts stay (docs/decisions/0010)."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.incident.personal-data-erased.v1"
    schema_version: SchemaVersion1 = 1

    reason: Literal["retention", "erasure"]
    """The retention period ended (the purge), or someone asked for it (right to erasure)."""
    retention_days: int | None = Field(default=None, ge=1)
    """The retention period that ended, for reason ``retention``."""
    actor: str = Field(min_length=1, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Who erased it: ``platform`` for the daily purge, ``cli:<user>`` on demand."""


# --- safety-plan events ----------------------------------------------------------------------


def check_period(starts_on: date, ends_on: date | None) -> None:
    """A plan's period: it may run until further notice, not end before it starts."""
    if ends_on is not None and ends_on < starts_on:
        raise ValueError(f"ends_on {ends_on} is before starts_on {starts_on}")


class SafetyPlanEvent(Event):
    """An event about a wijk's safety plan (wijkveiligheidsplan)."""

    topic: ClassVar[Topic] = SAFETY_PLANS

    wijk_code: WijkCode
    """The wijk whose plan it is; the Kafka key and the CloudEvents subject."""
    version: int = Field(ge=1)
    """The wijk's plan version: 1 for its first plan, one more for every change."""
    actor: str = Field(min_length=1, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL)
    """Who recorded the change: a staff member, or ``cli:<user>`` for an operator."""

    @property
    def subject(self) -> str:
        return self.wijk_code


@register
class SafetyPlanAdopted(SafetyPlanEvent):
    """A wijk's residents adopted a safety plan, or changed it: the plan as it now stands."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.safety-plan.adopted.v1"
    schema_version: SchemaVersion1 = 1

    categories: tuple[CategoryCode, ...] = Field(min_length=1, max_length=20)
    """The categories the residents made a priority: raised one step in this wijk."""
    starts_on: date
    """The first day the plan runs (Europe/Amsterdam)."""
    ends_on: date | None = None
    """The last day the plan runs; None while it runs until further notice."""
    adopted_by: str = Field(min_length=1, max_length=200)
    """Who adopted it, e.g. "Wijkraad Meerwijk" (a body, not a person)."""
    adopted_on: date
    """When it was adopted."""

    @model_validator(mode="after")
    def _period(self) -> Self:
        check_period(self.starts_on, self.ends_on)
        return self


@register
class SafetyPlanEnded(SafetyPlanEvent):
    """A wijk's safety plan ends: its categories are no longer raised after ``ends_on``."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.safety-plan.ended.v1"
    schema_version: SchemaVersion1 = 1

    ends_on: date
    """The last day the plan runs (Europe/Amsterdam)."""
    reason: str | None = Field(default=None, max_length=1000, json_schema_extra=OPERATIONAL)
    """Why it ends."""


# --- notification events ---------------------------------------------------------------------


@register
class NotificationDispatched(NotificationEvent):
    """Notify sent (or re-sent) a notification to a recipient."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.notification.dispatched.v1"
    schema_version: SchemaVersion1 = 1

    channel: NotificationChannel
    """How: Standard Webhooks POST, CAP 1.2 alert, or e-mail."""
    profile: Profile
    """The disclosure profile the message was minimised to."""
    priority: Priority
    """The incident's priority when sent."""
    attempt: int = Field(ge=1)
    """1 for the first attempt."""
    webhook_id: str | None = Field(default=None, max_length=100)
    """The ``webhook-id`` header (Standard Webhooks), webhook channel only."""
    cap_identifier: str | None = Field(default=None, max_length=200)
    """The CAP alert ``identifier``, CAP channel only."""
    cap_msg_type: Literal["Alert", "Update", "Cancel"] | None = None
    """The CAP ``msgType``, CAP channel only."""
    acknowledge_by: UtcDatetime | None = None
    """When the recipient must have acknowledged, if it must."""


@register
class NotificationDelivered(NotificationEvent):
    """The recipient's endpoint accepted the notification."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.notification.delivered.v1"
    schema_version: SchemaVersion1 = 1

    channel: NotificationChannel
    """How it was delivered."""
    attempt: int = Field(ge=1)
    """The attempt that succeeded."""
    status_code: int | None = Field(default=None, ge=100, le=599)
    """HTTP status of the endpoint's answer (webhook, CAP)."""


@register
class NotificationFailed(NotificationEvent):
    """An attempt to deliver a notification failed."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.notification.failed.v1"
    schema_version: SchemaVersion1 = 1

    channel: NotificationChannel
    """How it was tried."""
    attempt: int = Field(ge=1)
    """The attempt that failed."""
    error: str = Field(max_length=2000, json_schema_extra=OPERATIONAL)
    """What went wrong (status, timeout, refused, ...)."""
    status_code: int | None = Field(default=None, ge=100, le=599)
    """HTTP status of the endpoint's answer, if there was one."""
    final: bool
    """No more attempts follow; escalation takes over."""
    next_attempt_at: UtcDatetime | None = None
    """When the next attempt is due, unless final."""


@register
class NotificationEscalated(NotificationEvent):
    """A notification was not acknowledged or not delivered in time; others were alerted."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.notification.escalated.v1"
    schema_version: SchemaVersion1 = 1

    level: int = Field(ge=1)
    """Escalation level: 1 for the first escalation of this notification."""
    reason: Literal["not_acknowledged", "delivery_failed"]
    """Why it escalated."""
    escalated_to: tuple[RecipientCode, ...] = Field(min_length=1)
    """Who is alerted now."""
    deadline: UtcDatetime | None = None
    """The acknowledge deadline that passed, for not_acknowledged."""


@register
class NotificationAcknowledged(NotificationEvent):
    """The recipient acknowledged the notification."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.notification.acknowledged.v1"
    schema_version: SchemaVersion1 = 1

    channel: NotificationChannel
    """The channel the acknowledgement came through."""
    acknowledged_by: str | None = Field(
        default=None, max_length=100, json_schema_extra=OPERATIONAL_PERSONAL
    )
    """The person at the recipient, if the recipient said."""


EscalationStop = Literal["acknowledged", "closed", "priority", "dropped", "exhausted"]


@register
class NotificationEscalationScheduled(NotificationEvent):
    """A recipient's escalation timer was set, moved or stopped: when notify pages the next in
    the recipient's chain (``recipients.yaml``) unless someone acknowledges the incident first.
    ``message_id`` is the first message to the recipient, the one the timer watches."""

    ce_type: ClassVar[str] = "nl.haarlem.veilig.notification.escalation-scheduled.v1"
    schema_version: SchemaVersion1 = 1

    level: int = Field(ge=0)
    """Pages sent for the recipient so far: 0 before the first escalation."""
    escalate_at: UtcDatetime | None = None
    """When the next page goes out; None: the timer stopped (``stopped``)."""
    stopped: EscalationStop | None = None
    """Why the timer stopped: the incident was acknowledged or closed, its priority no longer
    escalates, the recipient was dropped by a new decision, or the chain ran out."""
