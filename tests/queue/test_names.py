"""Consumer names stay unique where hosts share a name and a pid (containers: pid 1)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from filmstrip import instance, keys
from filmstrip.queue import Job, JobQueue, JobState
from tests.queue.conftest import Recorder, running, wait_for


@pytest.fixture
def same_host_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every process looks like pid 1 on a host named ``worker``, as replicas of one image."""
    monkeypatch.setattr(instance, "socket", SimpleNamespace(gethostname=lambda: "worker"))
    monkeypatch.setattr(instance, "os", SimpleNamespace(getpid=lambda: 1))


async def test_a_worker_leaving_the_group_keeps_a_twins_jobs(
    make_queue: Callable[..., JobQueue], same_host_and_pid: None
) -> None:
    """Leaving the group (XGROUP DELCONSUMER) drops the leaver's pending entries: under a
    shared name they would be the other worker's, which nobody could then reclaim."""
    queue = make_queue()
    release = asyncio.Event()

    async def hold(job: Job) -> None:
        await release.wait()

    holder, quick = Recorder(hold), Recorder()
    first, second = holder.consumer(queue, concurrency=1), quick.consumer(queue, concurrency=1)
    assert first.name.startswith("worker-worker-1-")
    assert first.name != second.name
    await queue.ensure_groups()
    await queue.add("photo:held", b"")
    async with running(first):
        await wait_for(lambda: _pending(queue, "photo:held"))
        await queue.add("photo:quick", b"")
        async with running(second):
            await wait_for(lambda: _completed(queue, "photo:quick"))
        # The second worker stopped and left the group; the first one's job is still
        # pending under its own name, so it can be reclaimed if the first one dies.
        assert await _pending(queue, "photo:held")
        release.set()
        await wait_for(lambda: _completed(queue, "photo:held"))


async def _pending(queue: JobQueue, job_id: str) -> bool:
    total = 0
    for stream in queue.keys.streams:
        summary = await queue.redis.xpending(stream, keys.QUEUE_GROUP)
        total += int(summary["pending"])
    info = await queue.get_job(job_id)
    return total == 1 and info is not None and info.state is JobState.ACTIVE


async def _completed(queue: JobQueue, job_id: str) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state is JobState.COMPLETED
