"""What the partner API answers: the response bodies of ``/v1``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.submission import TEXT


class Accepted(BaseModel):
    incident_id: UUID
    status_url: str


BatchOutcome = Literal["accepted", "duplicate", "invalid", "conflict"]


class BatchItemResult(BaseModel):
    index: int
    external_id: str | None = None
    result: BatchOutcome
    incident_id: UUID | None = None
    status_url: str | None = None
    errors: list[dict[str, str]] | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicate: int
    invalid: int
    conflict: int
    results: list[BatchItemResult]


class HistoryEntry(BaseModel):
    at: datetime
    status: str
    note: str | None = None


class IncidentStatus(BaseModel):
    incident_id: UUID
    external_id: str
    status: str
    received_at: datetime
    history: list[HistoryEntry]


class IncidentSummary(BaseModel):
    """One of the partner's reports as the partner may see it: public status and note."""

    incident_id: UUID
    external_id: str
    status: str = Field(description="The public status (see the `status` filter).")
    note: str | None = Field(description="The public note of the latest status, if any.")
    received_at: datetime
    updated_at: datetime = Field(
        description="When the platform recorded the latest change; the list's order. Poll "
        "with `since` a little before the last one seen: changes repeat, none are missed."
    )
    status_url: str


class IncidentPage(BaseModel):
    items: list[IncidentSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null on the "
        "last page."
    )


class WithdrawalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=TEXT)] = Field(
        description="Why the report is withdrawn (told to the responders who saw it).",
        examples=["Per ongeluk dubbel gemeld"],
    )


class Withdrawal(BaseModel):
    """A withdrawal: the same on every repeat (the first request's reason and time)."""

    incident_id: UUID
    external_id: str
    reason: str
    requested_at: datetime
    status_url: str = Field(description="Where the report's status shows it cancelled.")
