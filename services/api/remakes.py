"""Having a derivative made again when the api finds it short or missing.

Workers write derivatives without fsync (they can be made again from the original, which
is fsynced), so a power cut or kernel crash can leave one shorter than the catalog says,
or gone. The api checks each derivative's size as it opens it and, on a mismatch, queues
the job that runs the stage which makes it again, instead of serving a broken file that
browsers would keep (derivatives are served as immutable).
"""

from __future__ import annotations

import logging

from filmstrip.catalog import DerivativeRecord, PhotoRecord
from filmstrip.errors import LogicError
from filmstrip.pipeline import stage_making
from services.api.jobs import build_remake_job, encode_job
from services.api.state import ApiState

log = logging.getLogger(__name__)


async def remake(
    state: ApiState, photo: PhotoRecord, derivative: DerivativeRecord, stored: int | None
) -> None:
    """Queue the job that makes ``derivative`` again (once: while it waits or runs, asking
    again is a no-op). ``stored`` is the size found, None if the blob is missing."""
    stage = stage_making(derivative.name)
    if stage is None:
        raise LogicError(
            f"no stage makes the derivative {derivative.name!r}", code="unknown_derivative"
        )
    job = build_remake_job(state.settings, photo, stage)
    # Removed once done, so a later damage (another power cut) can queue it again.
    added = await state.queue.add(
        job.id, encode_job(job), priority=job.pipeline.priority, remove_on_complete=True
    )
    if added.created:
        log.warning(
            "derivative short or missing; queued to be made again",
            extra={
                "photo_id": photo.id,
                "derivative": derivative.name,
                "expected_bytes": derivative.bytes,
                "stored_bytes": stored,
                "job_id": job.id,
            },
        )
