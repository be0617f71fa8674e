"""Which job a photo needs next, and the job's codec (no Redis, catalog or pipeline run)."""

from __future__ import annotations

import msgspec
import pytest

from filmstrip.catalog import PhotoRecord, PhotoStatus
from filmstrip.errors import LogicError
from filmstrip.photos import (
    decode_job,
    encode_job,
    owed_stages,
    ready_job,
    remake_job,
    split_stages,
)
from filmstrip.settings import load_settings

PHOTO = PhotoRecord(
    id="p1", client_id="c", session_id="s", blob_key="originals/p1", content_type="image/jpeg",
    bytes=3, sha256=None, status=PhotoStatus.QUEUED, job_id="photo:p1", trace_id="t" * 32,
    uploaded_at="2024-01-01T00:00:00.000Z",
)  # fmt: skip


def test_the_ready_job_goes_through_the_codec_unchanged() -> None:
    settings = load_settings({"FILMSTRIP_JOB_PRIORITY": "4"})
    job = ready_job(settings, PHOTO)
    assert (job.id, job.storage.key, job.pipeline.priority) == ("photo:p1", "originals/p1", 4)
    assert (job.context.session_id, job.context.trace_id) == ("s", "t" * 32)
    assert decode_job(encode_job(job)) == job


def test_every_job_of_a_photo_runs_the_pipeline_and_priority_its_upload_chose() -> None:
    settings = load_settings({})
    chosen = msgspec.structs.replace(PHOTO, pipeline="quick_processing", priority=8)
    job = ready_job(settings, chosen)
    assert (job.pipeline.name, job.pipeline.stages) == (
        "quick_processing",
        ["validation", "thumbnails"],
    )
    assert job.pipeline.priority == 8
    # A photo from before the choices: the settings' defaults.
    plain = ready_job(settings, PHOTO).pipeline
    assert (plain.name, plain.priority) == ("full_processing", settings.queue.priority)


def test_a_payload_that_is_no_job_is_a_logic_error() -> None:
    with pytest.raises(LogicError) as caught:
        decode_job(b'{"id": "photo:p1"}')
    assert caught.value.code == "bad_job"


def test_optimization_is_left_to_the_follow_up_unless_told_not_to() -> None:
    job = ready_job(load_settings({}), PHOTO)
    assert split_stages(load_settings({}), job) == (
        ["validation", "metadata", "thumbnails"],
        ["optimization"],
    )
    at_once = load_settings({"FILMSTRIP_DEFER_OPTIMIZATION": "false"})
    assert split_stages(at_once, job) == (job.pipeline.stages, [])


def test_a_follow_up_is_owed_for_the_stages_without_a_result() -> None:
    assert owed_stages(["optimization"], None) == ["optimization"]
    assert owed_stages(["optimization"], {"optimization": {"failed": True}}) == []


def test_a_remake_runs_the_stage_making_the_derivative_at_the_uploads_priority() -> None:
    settings = load_settings({})
    job = remake_job(settings, PHOTO, "preview")
    assert (job.id, job.pipeline.stages, job.pipeline.phase) == (
        "remake:p1:thumbnails",
        ["thumbnails"],
        "deferred",
    )
    assert job.pipeline.priority == settings.queue.priority
    with pytest.raises(LogicError):
        remake_job(settings, PHOTO, "poster")
