"""The job the api enqueues and the worker consumes (the seed's ``PhotoProcessingJob``)."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

#: The named pipelines a job may run (their stages: filmstrip/pipeline/plan.py), here so the
#: settings and the api can check a name without importing the pipeline.
PIPELINE_NAMES: Final = ("full_processing", "quick_processing")


class JobStorage(msgspec.Struct, frozen=True, kw_only=True):
    """Where the original lives: its key in the blob store the roles share."""

    key: str


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


class PhotoProcessingJob(msgspec.Struct, frozen=True, kw_only=True):
    """One photo to process. ``id`` is ``photo:<photo_id>`` so a photo is queued at most once.

    Retries, backoff and retention are the queue's settings, not the job's. Jobs queued by
    releases that also sent ``opts``, ``storage.bucket``, ``storage.original_size`` and
    ``storage.mime_type`` (never read) decode as they are: unknown fields are ignored.
    """

    id: str
    photo_id: str
    storage: JobStorage
    pipeline: JobPipeline
    context: JobContext


def job_id_for(photo_id: str) -> str:
    """The deduplicating job id of a photo."""
    return f"photo:{photo_id}"


def deferred_job_id_for(photo_id: str) -> str:
    """The deduplicating id of a photo's follow-up job (its deferred stages)."""
    return f"deferred:{photo_id}"


def remake_job_id_for(photo_id: str, stage: str) -> str:
    """The deduplicating id of the job that makes a ready photo's ``stage`` outputs again."""
    return f"remake:{photo_id}:{stage}"
