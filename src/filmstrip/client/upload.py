"""One file to the api, by the way that suits its size: small files in one multipart
request, larger ones through tus, resumable after a cut."""

from __future__ import annotations

import asyncio

from filmstrip.client.files import LocalFile
from filmstrip.client.http import ApiClient
from filmstrip.client.resume import ResumeStore
from filmstrip.client.tus import CHUNK_BYTES, Progress, Uploaded, upload_tus

#: Files up to this size go in one multipart request; larger ones through tus.
MULTIPART_MAX_BYTES = 4 * 1024 * 1024


async def upload_file(
    api: ApiClient,
    file: LocalFile,
    *,
    session_id: str | None = None,
    resume: ResumeStore | None = None,
    progress: Progress | None = None,
    multipart_max_bytes: int = MULTIPART_MAX_BYTES,
    chunk_bytes: int = CHUNK_BYTES,
    pipeline: str | None = None,
    priority: int | None = None,
) -> Uploaded:
    """Upload an inspected photo (:func:`filmstrip.client.files.inspect_file`); with
    ``pipeline`` or ``priority``, processed so (the server's defaults otherwise)."""
    choices = {"pipeline": pipeline, "priority": None if priority is None else str(priority)}
    fields = {name: value for name, value in choices.items() if value is not None}
    if file.size > multipart_max_bytes:
        return await upload_tus(
            api,
            file,
            session_id=session_id,
            fields=fields,
            resume=resume,
            progress=progress,
            chunk_bytes=chunk_bytes,
        )
    data = await asyncio.to_thread(file.path.read_bytes)
    accepted = await api.upload_bytes(
        data, filename=file.path.name, sha256=file.sha256, session_id=session_id, fields=fields
    )
    if progress is not None:
        progress(file.size)
    return Uploaded(photo_id=accepted.photo_id, duplicate=accepted.duplicate)
