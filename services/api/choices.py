"""What an upload may choose for its processing: ``pipeline`` and ``priority``, the same for
a multipart form's fields and tus metadata, checked before anything is stored.

Priority 1 runs first and 10 last (follow-up jobs wait at ``FILMSTRIP_DEFERRED_PRIORITY``).
Any client may ask for the default (``FILMSTRIP_JOB_PRIORITY``) or a later one, giving way
to others; only an admin may go ahead of the default, or every client would.
"""

from __future__ import annotations

from dataclasses import dataclass

from filmstrip.catalog import ClientRecord
from filmstrip.protocols.jobs import PIPELINE_NAMES
from filmstrip.services.api.errors import ApiError
from filmstrip.settings import Settings

#: The fields (and tus metadata keys) that carry the choices.
FIELDS = ("pipeline", "priority")


@dataclass(frozen=True)
class UploadChoices:
    """An upload's pipeline and priority; None where it chose none (the defaults)."""

    pipeline: str | None = None
    priority: int | None = None


def upload_choices(
    settings: Settings, client: ClientRecord, values: dict[str, str]
) -> UploadChoices:
    """The choices in ``values`` (form fields or tus metadata); 400 for an unknown pipeline
    or a priority that is not 1-10, 403 for one ahead of the default from a non-admin."""
    pipeline = values.get("pipeline") or None
    if pipeline is not None and pipeline not in PIPELINE_NAMES:
        raise ApiError(
            400,
            "unknown_pipeline",
            f"pipeline {pipeline!r} is unknown; use one of {', '.join(PIPELINE_NAMES)}",
        )
    raw = values.get("priority") or None
    if raw is None:
        return UploadChoices(pipeline=pipeline)
    priority = int(raw) if raw.isascii() and raw.isdigit() else 0
    if not 1 <= priority <= 10:
        raise ApiError(
            400, "bad_priority", "priority must be an integer from 1 (first) to 10 (last)"
        )
    if priority < settings.queue.priority and not client.is_admin:
        raise ApiError(
            403,
            "priority_not_allowed",
            f"priority {priority} would go ahead of the default ({settings.queue.priority}): "
            f"only an admin token may; send {settings.queue.priority}-10",
        )
    return UploadChoices(pipeline=pipeline, priority=priority)
