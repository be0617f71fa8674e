"""The job the api enqueues and the worker consumes (the seed's ``PhotoProcessingJob``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class JobStorage(msgspec.Struct, frozen=True, kw_only=True):
    """Where the original lives."""

    key: str
    bucket: str
    original_size: int
    mime_type: str


class JobPipeline(msgspec.Struct, frozen=True, kw_only=True):
    """Which named pipeline and stages to run.

    ``phase`` ``ready`` (the upload's job) runs what the client waits for and announces
    the photo ready; ``deferred`` runs stages on a photo that is already ready and merges
    their results: the worker's low-priority follow-up (the stages left for later), or
    the api's remake of a derivative it found short or missing.
    """

    name: str
    stages: list[str]
    priority: Annotated[int, msgspec.Meta(ge=1, le=10)] = 5
    phase: Literal["ready", "deferred"] = "ready"


class JobContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who asked, and the trace that follows the photo from upload to completion."""

    client_id: str
    uploaded_at: str
    trace_id: str
    session_id: str | None = None


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "exponential"
    delay_ms: int = 5000
    jitter: float = 0.0


class Retention(msgspec.Struct, frozen=True, kw_only=True):
    """Keep finished jobs for at most ``age_s`` seconds and ``count`` jobs (0 = no bound)."""

    age_s: int = 0
    count: int = 0


class JobOptions(msgspec.Struct, frozen=True, kw_only=True):
    attempts: int = 3
    backoff: Backoff = msgspec.field(default_factory=Backoff)
    remove_on_complete: Retention = msgspec.field(
        default_factory=lambda: Retention(age_s=24 * 3600, count=1000)
    )
    remove_on_fail: Retention = msgspec.field(
        default_factory=lambda: Retention(age_s=7 * 24 * 3600, count=5000)
    )


class PhotoProcessingJob(msgspec.Struct, frozen=True, kw_only=True):
    """One photo to process. ``id`` is ``photo:<photo_id>`` so a photo is queued at most once."""

    id: str
    photo_id: str
    storage: JobStorage
    pipeline: JobPipeline
    context: JobContext
    opts: JobOptions = msgspec.field(default_factory=JobOptions)


def job_id_for(photo_id: str) -> str:
    """The deduplicating job id of a photo."""
    return f"photo:{photo_id}"


def deferred_job_id_for(photo_id: str) -> str:
    """The deduplicating id of a photo's follow-up job (its deferred stages)."""
    return f"deferred:{photo_id}"


def remake_job_id_for(photo_id: str, stage: str) -> str:
    """The deduplicating id of the job that makes a ready photo's ``stage`` outputs again."""
    return f"remake:{photo_id}:{stage}"


def follow_up_job(job: PhotoProcessingJob, stages: list[str], priority: int) -> PhotoProcessingJob:
    """The follow-up of ``job``: the same photo and context, ``stages`` deferred."""
    return msgspec.structs.replace(
        job,
        id=deferred_job_id_for(job.photo_id),
        pipeline=JobPipeline(
            name=job.pipeline.name, stages=stages, priority=priority, phase="deferred"
        ),
    )
