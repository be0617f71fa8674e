"""The job contract: jobs already queued by an older release still decode."""

from __future__ import annotations

import msgspec

from filmstrip.protocols.jobs import PhotoProcessingJob

# A job as releases before this one wrote it, with the fields nothing ever read.
OLDER_RELEASE_JOB = b"""{
  "id": "photo:p1", "photo_id": "p1",
  "storage": {"key": "originals/p1", "bucket": "/var/blobs", "original_size": 3,
              "mime_type": "image/jpeg"},
  "pipeline": {"name": "full_processing", "stages": ["validation"], "priority": 5,
               "phase": "ready"},
  "context": {"client_id": "c", "uploaded_at": "2024-01-01T00:00:00.000Z", "trace_id": "t"},
  "opts": {"attempts": 3, "backoff": {"type": "exponential", "delay_ms": 5000, "jitter": 0.0},
           "remove_on_complete": {"age_s": 86400, "count": 1000},
           "remove_on_fail": {"age_s": 604800, "count": 5000}}
}"""


def test_a_job_queued_by_an_older_release_decodes() -> None:
    job = msgspec.json.decode(OLDER_RELEASE_JOB, type=PhotoProcessingJob)
    assert (job.id, job.storage.key, job.pipeline.stages) == (
        "photo:p1",
        "originals/p1",
        ["validation"],
    )
    assert job.context.client_id == "c" and job.context.session_id is None
