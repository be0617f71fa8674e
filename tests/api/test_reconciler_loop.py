"""The reconciler's timer outlives a failed round: a Redis outage costs rounds, never the
loop that repairs stuck photos."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import pytest

from bench.redis_server import RedisServer
from filmstrip.catalog import PhotoRecord, PhotoStatus, utcnow
from filmstrip.queue import JobState
from filmstrip.services.api.reconciler import run_reconciler
from filmstrip.tasks import cancel_and_wait
from tests.api.conftest import api_settings, running_api


async def test_a_round_failed_by_a_redis_outage_is_followed_by_one_that_repairs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each api process runs the reconciler in one task for its life. Its rounds fail while
    Redis is down (the lease cannot be taken); the task must log that and try at the next
    tick, or the first outage would end it, and from then on a photo whose job Redis lost
    would stay queued for ever."""
    with RedisServer(appendonly=False) as server:
        settings = api_settings(tmp_path, server.url, reconcile_interval_s="0.1", stuck_after_s="0")
        async with running_api(settings, "alice") as api:
            state = api.state
            pid = str(uuid.uuid4())
            stuck = PhotoRecord(
                id=pid, client_id="c-test", session_id=None, blob_key=f"originals/{pid}",
                content_type="image/jpeg", bytes=3, sha256=None, status=PhotoStatus.QUEUED,
                job_id=f"photo:{pid}", trace_id=uuid.uuid4().hex, uploaded_at=utcnow(),
            )  # fmt: skip
            await state.catalog.insert_photo(stuck, None)  # its job: never queued, or lost
            server.stop(kill=True)
            task = asyncio.create_task(run_reconciler(state.photos, state.redis, state.blobs))
            try:
                with caplog.at_level(logging.WARNING, "filmstrip.api.reconciler"):
                    async with asyncio.timeout(10):
                        while True:
                            if any("round failed" in r.getMessage() for r in caplog.records):
                                break
                            await asyncio.sleep(0.05)
                server.start()  # empty: the job is not there either
                async with asyncio.timeout(10):
                    while True:
                        info = await state.queue.get_job(stuck.job_id)
                        if info is not None:
                            break
                        await asyncio.sleep(0.05)
                assert info.state is JobState.WAITING
                assert not task.done()
            finally:
                await cancel_and_wait(task)
