"""Uploads are refused with 503 + Retry-After while too many jobs wait, and leave nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from tests.api.conftest import Api, api_settings, running_api
from tests.api.factories import fake_jpeg, uploaded


@pytest.fixture
async def small_queue_api(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Api]:
    settings = api_settings(tmp_path, redis_server.url, queue_max_waiting="2")
    async with running_api(settings, "dana") as running:
        yield running


async def test_upload_over_the_waiting_limit_is_503_queue_full(small_queue_api: Api) -> None:
    api = small_queue_api
    accepted = [await uploaded(api), await uploaded(api)]
    files_before = api.blob_files()

    resp = await api.upload(fake_jpeg())
    body = await resp.json()
    assert resp.status == 503, body
    assert body["error"]["code"] == "queue_full"
    assert int(resp.headers["Retry-After"]) > 0

    assert api.blob_files() == files_before
    assert await api.photo_count() == 2
    assert await api.waiting_jobs() == 2

    # Once a job leaves the queue, uploads are accepted again.
    assert await api.state.queue.cancel(f"photo:{accepted[0]}")
    assert (await api.upload(fake_jpeg())).status == 201


async def test_waiting_follow_up_jobs_do_not_refuse_uploads(small_queue_api: Api) -> None:
    """Follow-ups (optimization, band 10) wait behind every upload; only uploads count."""
    api = small_queue_api
    for n in range(3):
        await api.state.queue.add(f"deferred:test-{n}", b"{}", priority=10)
    assert (await api.state.queue.counts())["waiting"] == 3
    assert (await api.upload(fake_jpeg())).status == 201
    assert (await api.upload(fake_jpeg())).status == 201
    resp = await api.upload(fake_jpeg())  # two uploads wait now: the limit
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "queue_full"


async def test_a_huge_follow_up_backlog_refuses_uploads(small_queue_api: Api) -> None:
    """Ten times the limit, follow-ups too refuse uploads: they hold Redis memory."""
    api = small_queue_api
    for n in range(20):
        await api.state.queue.add(f"deferred:test-{n}", b"{}", priority=10)
    resp = await api.upload(fake_jpeg())
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "queue_full"
    assert await api.photo_count() == 0


async def test_far_below_the_limit_the_backlog_is_read_once_a_second_not_per_upload(
    api: Api,
) -> None:
    """Each reading is a Redis script over every band; a shared Redis pays it per upload
    otherwise. Far from the limit, one reading serves the uploads that follow it."""
    queue = api.state.queue
    reads = 0
    backlog = queue.backlog

    async def counted(top_band: int) -> tuple[int, int]:
        nonlocal reads
        reads += 1
        return await backlog(top_band)

    queue.backlog = counted  # type: ignore[method-assign]
    for _ in range(3):
        assert (await api.upload(fake_jpeg())).status == 201
    assert reads == 1
    assert await api.waiting_jobs() == 3
