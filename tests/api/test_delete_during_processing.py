"""A photo deleted while a worker processes it: the delete answers 204 at once, and the
worker finishes without error and leaves no blob behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from filmstrip.errors import FilmstripError
from filmstrip.photos import PhotoLifecycle
from filmstrip.queue import Consumer, Job
from filmstrip.services.worker.processor import PhotoProcessor
from tests.api.conftest import Api
from tests.support.settings import replace_settings


async def test_delete_mid_job_leaves_nothing(
    api: Api, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resp = await api.upload((corpus / "real/Sony_Cybershot.jpg").read_bytes())
    photo_id = (await resp.json())["photo_id"]

    # Hold the worker at its first derivative write: by then it has read the original and
    # run every stage, which is the latest point a delete can land.
    blobs = api.state.blobs
    reached, release = asyncio.Event(), asyncio.Event()
    put_bytes = blobs.put_bytes

    async def gated_put_bytes(key: str, data: bytes, **kw: Any) -> Any:
        reached.set()
        await release.wait()
        return await put_bytes(key, data, **kw)

    monkeypatch.setattr(blobs, "put_bytes", gated_put_bytes)
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_completed(job: Job) -> None:
        outcome.set_result("completed")

    async def on_failed(job: Job, error: FilmstripError) -> None:
        outcome.set_result(f"failed: {error}")

    # Every stage in the upload's job: no follow-up job to wait for.
    settings = replace_settings(api.settings, defer_optimization=False)
    photos = PhotoLifecycle(
        settings, api.state.catalog, api.state.queue, api.state.events,
        signing_secret=api.state.signing_secret,
    )  # fmt: skip
    processor = PhotoProcessor(settings, photos=photos, blobs=blobs)
    consumer = Consumer(
        api.state.queue,
        processor.handle,
        on_completed=on_completed,
        on_failed=on_failed,
        concurrency=1,
    )
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(reached.wait(), 30)
        deleted = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
        assert deleted.status == 204
        release.set()
        assert await asyncio.wait_for(outcome, 30) == "completed"
    finally:
        release.set()
        await consumer.stop()
        await task

    assert await api.state.catalog.get_photo(photo_id) is None
    assert [f for f in api.blob_files() if photo_id in f] == []
