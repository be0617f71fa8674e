"""Uploads are refused with 503 + Retry-After while too many jobs wait, and leave nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip.services.api import backlog
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


@pytest.fixture
def readings_stay_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reading stands in for Redis for the whole test, however slow the machine: what
    is checked is that one is never trusted near the limit."""
    monkeypatch.setattr(backlog, "FRESH_S", 600.0)


async def _accepted(apis: list[Api], count: int) -> int:
    """How many of ``count`` uploads, sent in turn to each of ``apis``, were accepted."""
    statuses = [(await apis[n % len(apis)].upload(fake_jpeg())).status for n in range(count)]
    assert set(statuses) <= {201, 503}, statuses
    return statuses.count(201)


async def test_uploads_one_process_let_through_count_until_it_reads_again(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path, readings_stay_fresh: None
) -> None:
    """Between two readings an api process adds its own uploads to the last one: a burst
    into one process stops at the limit, not at whatever the reading said."""
    settings = api_settings(tmp_path, redis_server.url, queue_max_waiting="10")
    async with running_api(settings, "erin") as api:
        assert await _accepted([api], 14) == 10
        assert await api.waiting_jobs() == 10


async def test_two_processes_with_fresh_readings_do_not_pass_the_limit_together(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path, readings_stay_fresh: None
) -> None:
    """A reading is trusted only under half the limit, so the other processes' uploads
    meanwhile would have to fill the other half: two processes fill it, and no more."""
    one = api_settings(tmp_path / "one", redis_server.url, queue_max_waiting="10")
    two = api_settings(tmp_path / "two", redis_server.url, queue_max_waiting="10")
    async with running_api(one, "finn") as a, running_api(two, "gail") as b:
        assert await _accepted([a, b], 24) == 10
        assert await a.waiting_jobs() == 10


async def test_follow_ups_queued_since_the_last_reading_are_seen_near_their_limit(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path, readings_stay_fresh: None
) -> None:
    """Workers queue follow-ups the api does not count: once all bands hold half of their
    limit (ten times the upload limit), every check reads Redis again."""
    settings = api_settings(tmp_path, redis_server.url, queue_max_waiting="10")
    async with running_api(settings, "hana") as api:  # 100 jobs in all bands at most
        for n in range(60):
            await api.state.queue.add(f"deferred:test-{n}", b"{}", priority=10)
        assert (await api.upload(fake_jpeg())).status == 201  # read: 0 ahead, 60 in all
        for n in range(60, 105):  # workers finish photos meanwhile: 106 jobs in all
            await api.state.queue.add(f"deferred:test-{n}", b"{}", priority=10)
        resp = await api.upload(fake_jpeg())
        assert resp.status == 503 and (await resp.json())["error"]["code"] == "queue_full"
