"""The shapes of ids that appear in paths and queries; anything else is refused early."""

from __future__ import annotations

import re

PHOTO_ID = re.compile(r"^[0-9a-f-]{36}$")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Photo jobs are ``photo:<photo id>`` (filmstrip.protocols.jobs.job_id_for).
PHOTO_JOB_ID = re.compile(r"^photo:([0-9a-f-]{36})$")


def photo_of_job(job_id: str) -> str | None:
    """The photo a job id belongs to, if it is a photo job."""
    match = PHOTO_JOB_ID.match(job_id)
    return match.group(1) if match else None
