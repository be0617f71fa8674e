"""Which job a photo needs next, and the job's one codec (api and worker alike)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from filmstrip.catalog import PhotoRecord
from filmstrip.errors import LogicError
from filmstrip.pipeline import resolve_stages, split_deferred, stage_making
from filmstrip.protocols.jobs import (
    JobContext,
    JobPipeline,
    JobStorage,
    PhotoProcessingJob,
    deferred_job_id_for,
    job_id_for,
    remake_job_id_for,
)
from filmstrip.settings import Settings

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(PhotoProcessingJob)


def encode_job(job: PhotoProcessingJob) -> bytes:
    """The queue payload of a job."""
    return _encoder.encode(job)


def decode_job(payload: bytes) -> PhotoProcessingJob:
    """The job in a queue payload; a payload that is not one is a LOGIC error."""
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise LogicError(f"malformed job payload: {exc}", code="bad_job") from exc


def photo_pipeline(settings: Settings, photo: PhotoRecord) -> str:
    """The pipeline ``photo``'s jobs run: the one its upload chose, else the default."""
    return photo.pipeline or settings.jobs.default_pipeline


def photo_priority(settings: Settings, photo: PhotoRecord) -> int:
    """The priority ``photo``'s upload job runs at: its upload's choice, else the default."""
    return photo.priority or settings.queue.priority


def ready_job(settings: Settings, photo: PhotoRecord) -> PhotoProcessingJob:
    """The job that processes ``photo`` with the pipeline and priority its upload chose (the
    settings' defaults where it chose none) and announces it ready."""
    pipeline = photo_pipeline(settings, photo)
    return PhotoProcessingJob(
        id=job_id_for(photo.id),
        photo_id=photo.id,
        storage=JobStorage(key=photo.blob_key),
        pipeline=JobPipeline(
            name=pipeline,
            stages=resolve_stages(pipeline, None),
            priority=photo_priority(settings, photo),
        ),
        context=JobContext(
            client_id=photo.client_id,
            session_id=photo.session_id,
            uploaded_at=photo.uploaded_at,
            trace_id=photo.trace_id,
        ),
    )


def split_stages(settings: Settings, job: PhotoProcessingJob) -> tuple[list[str], list[str]]:
    """A ready job's stages as (run now, leave to the follow-up job)."""
    stages = resolve_stages(job.pipeline.name, job.pipeline.stages)
    if not settings.jobs.defer_optimization:
        return stages, []
    return split_deferred(stages)


def follow_up_job(job: PhotoProcessingJob, stages: list[str], priority: int) -> PhotoProcessingJob:
    """The follow-up of ``job``: the same photo and context, ``stages`` deferred."""
    return msgspec.structs.replace(
        job,
        id=deferred_job_id_for(job.photo_id),
        pipeline=JobPipeline(
            name=job.pipeline.name, stages=stages, priority=priority, phase="deferred"
        ),
    )


def owed_stages(deferred: Iterable[str], results: dict[str, object] | None) -> list[str]:
    """The stages of ``deferred`` that have no result in a photo's ``results`` yet."""
    return [name for name in deferred if name not in (results or {})]


def remake_job(settings: Settings, photo: PhotoRecord, derivative: str) -> PhotoProcessingJob:
    """The job that runs the stage making ``derivative`` again on the ready ``photo``: a
    follow-up-phase job at the upload's priority, since a client is waiting."""
    stage = stage_making(derivative)
    if stage is None:
        raise LogicError(f"no stage makes the derivative {derivative!r}", code="unknown_derivative")
    job = ready_job(settings, photo)
    return msgspec.structs.replace(
        follow_up_job(job, [stage], job.pipeline.priority), id=remake_job_id_for(photo.id, stage)
    )
