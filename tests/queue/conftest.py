"""Factories for queues and running consumers on the private redis-server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from filmstrip.queue import Consumer, Job, JobQueue, QueueOptions

_names = itertools.count()

# Short timings so the whole directory runs in seconds.
FAST = dict(
    backoff_ms=10,
    visibility_timeout_ms=300,
    shutdown_grace_s=2.0,
    block_ms=100,
)


@pytest.fixture
def make_queue(redis: aioredis.Redis) -> Callable[..., JobQueue]:
    """Build a queue with a fresh name and test-speed timings; options override them."""

    def make(**overrides: Any) -> JobQueue:
        opts: dict[str, Any] = {**FAST, "name": f"q{next(_names)}", **overrides}
        return JobQueue(redis, QueueOptions(**opts))

    return make


@asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[Consumer]:
    """Run ``consumer`` in the background for the block; stop it gracefully after."""
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        await consumer.stop()
        await task


async def add_many(
    queue: JobQueue, job_ids: Iterable[str], payload: bytes = b"", **options: Any
) -> None:
    """Enqueue ``job_ids`` one after another, in order, with the same payload and options."""
    for job_id in job_ids:
        await queue.add(job_id, payload, **options)


async def wait_for(predicate: Callable[[], Awaitable[bool]], limit_s: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``limit_s`` seconds."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Recorder:
    """A handler that records every delivery and runs an optional per-job behaviour."""

    def __init__(self, behaviour: Callable[[Job], Awaitable[None]] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.failed: list[tuple[str, Any]] = []
        self.completed: list[str] = []
        self.behaviour = behaviour

    async def __call__(self, job: Job) -> None:
        self.calls.append((job.id, job.attempt))
        if self.behaviour is not None:
            await self.behaviour(job)

    async def on_failed(self, job: Job, error: Any) -> None:
        self.failed.append((job.id, error))

    async def on_completed(self, job: Job) -> None:
        self.completed.append(job.id)

    def consumer(self, queue: JobQueue, **kw: Any) -> Consumer:
        return Consumer(queue, self, on_failed=self.on_failed, on_completed=self.on_completed, **kw)
