"""What a handler receives (:class:`Job`) and what the admin API returns about jobs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import msgspec


class JobState(enum.StrEnum):
    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


class AddResult(msgspec.Struct, frozen=True):
    """The outcome of ``add``: ``created`` is False when the id already existed (dedupe hit)."""

    job_id: str
    created: bool
    state: JobState


class JobError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a job failed, as stored on the job and in the dead-letter stream."""

    code: str
    category: str
    message: str


class JobInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one job for the api (``GET /v1/queues/.../jobs``)."""

    id: str
    state: JobState
    priority: int
    attempts: int
    attempts_made: int
    progress: int
    created_at_ms: int
    processed_at_ms: int | None = None
    finished_at_ms: int | None = None
    delayed_until_ms: int | None = None
    error: JobError | None = None
    payload: bytes = b""


class ProgressStore(Protocol):
    """Where a delivery stores its progress: its queue."""

    async def set_progress(self, job_id: str, entry_id: str, percent: int) -> bool: ...


@dataclass(slots=True, kw_only=True, eq=False, repr=False)
class Job:
    """One delivery of a job to a handler. ``attempt`` is 1-based."""

    id: str
    entry_id: str  # the stream entry this delivery holds: its claim on the job
    priority: int
    payload: bytes
    attempt: int
    attempts: int
    deferrals: int
    backoff_ms: int
    store: ProgressStore
    # Jobs to queue with this delivery's completion: (id, payload, priority) each.
    then: list[tuple[str, bytes, int]] = field(default_factory=list)

    def then_add(self, job_id: str, payload: bytes, priority: int) -> None:
        """Queue a job (the queue's default options; once by its id) in the same step that
        stores this delivery's completion: atomically with it, and not if it fails."""
        if not 1 <= priority <= 10:
            raise ValueError(f"priority must be 1..10, got {priority}")
        self.then.append((job_id, payload, priority))

    async def update_progress(self, percent: int) -> bool:
        """Store 0..100 on the job; False if this delivery no longer owns the job."""
        return await self.store.set_progress(self.id, self.entry_id, percent)

    def __repr__(self) -> str:
        return f"Job({self.id!r}, attempt={self.attempt}/{self.attempts}, priority={self.priority})"
