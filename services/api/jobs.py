"""Building a photo's processing job from its catalog row (uploads and the reconciler)."""

from __future__ import annotations

import msgspec

from filmstrip.catalog import PhotoRecord
from filmstrip.pipeline import resolve_stages
from filmstrip.settings import Settings
from protocols.jobs import (
    JobContext,
    JobPipeline,
    JobStorage,
    PhotoProcessingJob,
    follow_up_job,
    job_id_for,
    remake_job_id_for,
)


def build_job(settings: Settings, photo: PhotoRecord) -> PhotoProcessingJob:
    """The job that processes ``photo`` with the default pipeline."""
    pipeline = settings.default_pipeline
    return PhotoProcessingJob(
        id=job_id_for(photo.id),
        photo_id=photo.id,
        storage=JobStorage(key=photo.blob_key),
        pipeline=JobPipeline(
            name=pipeline,
            stages=resolve_stages(pipeline, None),
            priority=settings.job_priority,
        ),
        context=JobContext(
            client_id=photo.client_id,
            session_id=photo.session_id,
            uploaded_at=photo.uploaded_at,
            trace_id=photo.trace_id,
        ),
    )


def build_remake_job(settings: Settings, photo: PhotoRecord, stage: str) -> PhotoProcessingJob:
    """The job that runs ``stage`` again on the ready ``photo`` to make its derivatives
    again: a follow-up-phase job at the upload's priority, since a client is waiting."""
    job = build_job(settings, photo)
    return msgspec.structs.replace(
        follow_up_job(job, [stage], job.pipeline.priority), id=remake_job_id_for(photo.id, stage)
    )


def encode_job(job: PhotoProcessingJob) -> bytes:
    """The queue payload of a job."""
    return msgspec.json.encode(job)
