"""What a partner system submits: one incident report, over HTTP, Open311 or Kafka.

The field names are the contract partners code against: the body of ``POST /v1/incidents``
and the value of a message on the partner's own topic ``incident-submissions.<partner>``.
Unknown fields are refused, so that a misspelt field is an error naming it rather than
silently ignored data. Intake turns an accepted submission into ``IncidentReported``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from schemas.taxonomy import taxonomy


def _category(code: str) -> str:
    if code not in taxonomy().category_codes:
        raise ValueError(
            f"unknown category {code!r}; see GET /open311/v2/services.json for the codes"
        )
    return code


OLDEST = timedelta(days=365)
AHEAD = timedelta(minutes=10)


def _recent(moment: datetime) -> datetime:
    # Compared as offsets from now, never converted: 0001-01-01T00:00+01:00 would overflow.
    now = datetime.now(UTC)
    try:
        age = now - moment
    except OverflowError:
        age = timedelta.max
    if age > OLDEST:
        raise ValueError("is more than a year ago; report what happened within the last year")
    if age < -AHEAD:
        raise ValueError("is in the future (more than 10 minutes ahead of now)")
    return moment


TEXT = r"^[^\u0000]*[^\u0000\s][^\u0000]*$"
"""Text holds something besides white space (which is stripped), and no NUL character (which
PostgreSQL cannot store): said in the schema too."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


def _one_of(*forms: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema for "exactly one of these groups of fields": each option requires its own
    fields (not null) and leaves the others out (or null), so a client's generator knows the
    rule too."""
    fields = [field for form in forms for field in form]
    given, absent = {"not": {"type": "null"}}, {"type": "null"}
    return {
        "oneOf": [
            {
                "required": list(form),
                "properties": {f: given if f in form else absent for f in fields},
            }
            for form in forms
        ]
    }


class LocationIn(Strict):
    """Exactly one of: a WGS84 point (``lat`` + ``lon``), a CBS ``buurt_code``, an ``address``."""

    model_config = ConfigDict(
        json_schema_extra=_one_of(("lat", "lon"), ("buurt_code",), ("address",))
    )

    lat: float | None = Field(default=None, ge=-90, le=90, examples=[52.3812])
    lon: float | None = Field(default=None, ge=-180, le=180, examples=[4.6366])
    buurt_code: Annotated[str, StringConstraints(pattern=r"^BU\d{8}$")] | None = Field(
        default=None, examples=["BU03920102"]
    )
    address: (
        Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=TEXT)] | None
    ) = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon are given together")
        forms = [self.lat is not None, self.buurt_code is not None, self.address is not None]
        if sum(forms) != 1:
            raise ValueError('give exactly one of {"lat", "lon"}, {"buurt_code"} or {"address"}')
        return self


class FlagsIn(Strict):
    in_progress: bool = False
    weapon: bool = False
    injuries: bool = False
    public_task_victim: bool = False
    victim_role: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="The role of a public-task victim: teacher, BOA, bus driver."
    )

    @model_validator(mode="after")
    def _role_needs_flag(self) -> Self:
        if self.victim_role and not self.public_task_victim:
            raise ValueError("victim_role is given only with public_task_victim: true")
        return self


class ReporterIn(Strict):
    """Personal data: encrypted before it is stored or published, full-profile recipients only."""

    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9 +()-]{6,30}$")] | None = None
    email: EmailStr | None = None


AttributeValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool


class IncidentSubmission(Strict):
    """One incident report from a partner system."""

    external_id: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=TEXT)] = (
        Field(
            description="The partner's own id of the report: the idempotency key.",
            examples=["MK-2026-000123"],
        )
    )
    occurred_at: Annotated[AwareDatetime, AfterValidator(_recent)] | None = Field(
        default=None,
        description="When it happened (RFC 3339 with offset); default: now. At most a year "
        "ago and at most ten minutes ahead (clocks drift; the future does not happen).",
    )
    description: Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=TEXT)] = (
        Field(
            description="Free text, Dutch or English.",
            examples=["Rook uit woning, bewoners buiten"],
        )
    )
    category_hint: Annotated[str, AfterValidator(_category)] | None = Field(
        default=None,
        description="A taxonomy code the partner suggests.",
        examples=["brand"],
        json_schema_extra={"enum": [*taxonomy().category_codes, None]},
    )
    location: LocationIn
    flags: FlagsIn = Field(default_factory=FlagsIn)
    reporter: ReporterIn | None = None
    attributes: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)], AttributeValue
    ] = Field(default_factory=dict, max_length=50)
