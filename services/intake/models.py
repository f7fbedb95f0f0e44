"""What the partner API answers: the response bodies of ``/v1``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel


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
