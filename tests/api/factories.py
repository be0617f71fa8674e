"""Factories for api tests: clients with tokens, distinct uploads, sessions."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from filmstrip.catalog import DerivativeRecord
from filmstrip.errors import DataError, FilmstripError
from filmstrip.photos import decode_job
from filmstrip.queue import Consumer, Job, JobState
from filmstrip.services.cli.tokens import issue_token
from tests.api.conftest import Api


def fake_jpeg() -> bytes:
    """Bytes that sniff as JPEG and differ on every call (so they are never duplicates).

    No worker runs in api tests, so the pixels never matter.
    """
    return b"\xff\xd8\xff\xe0" + os.urandom(256)


async def client_token(api: Api, name: str, *, admin: bool = False) -> str:
    """A token for a new client ``name``."""
    _client, token = await issue_token(api.state.catalog, name, admin=admin)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def uploaded(
    api: Api, *, token: str | None = None, session_id: str | None = None, data: bytes | None = None
) -> str:
    """Upload distinct bytes (or ``data``); the new photo's id."""
    fields = {"session_id": session_id} if session_id else None
    resp = await api.upload(data or fake_jpeg(), token=token, fields=fields)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 201, body
    return str(body["photo_id"])


async def new_session(api: Api, *, token: str | None = None) -> str:
    """A new upload session's id."""
    resp = await api.http.post(f"{api.url}/v1/sessions", headers=bearer(token or api.token))
    body: dict[str, Any] = await resp.json()
    assert resp.status == 201, body
    return str(body["session_id"])


async def complete(api: Api, photo_id: str, *, taken_at: str | None = None) -> None:
    """Record ``photo_id`` as processed the way the worker does, with one derivative blob."""
    key = f"derivatives/{photo_id}/thumbnail.webp"
    await api.state.blobs.put_bytes(key, b"RIFF....WEBP", content_type="image/webp")
    derivative = DerivativeRecord(
        name="thumbnail", key=key, content_type="image/webp", width=1, height=1, bytes=12
    )
    stored = await api.state.catalog.complete_photo(
        photo_id, metadata={}, derivatives=[derivative], taken_at=taken_at
    )
    assert stored


async def fail(api: Api, photo_id: str, error: FilmstripError | None = None) -> None:
    """Dead-letter the photo's job and mark the photo failed through its lifecycle, as the
    worker's failure hook does (with ``error``, by default a DATA one: a corrupt file).

    Runs a real consumer, so the photo's job must be the only one waiting.
    """
    job_id = f"photo:{photo_id}"
    failed = asyncio.Event()

    async def handler(job: Job) -> None:
        assert job.id == job_id, f"another job was waiting: {job.id}"
        raise error or DataError("cannot decode", code="corrupt")

    async def on_failed(job: Job, error: FilmstripError) -> None:
        what = {"code": error.code, "category": str(error.category), "message": error.message}
        await api.state.photos.fail(decode_job(job.payload), **what)
        failed.set()

    consumer = Consumer(api.state.queue, handler, on_failed=on_failed, concurrency=1)
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(failed.wait(), 10)
    finally:
        await consumer.stop()
        await task
    info = await api.state.queue.get_job(job_id)
    assert info is not None and info.state is JobState.FAILED, info
