"""Which failed deliveries the worker counts as retries (the queue will run them again)."""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from filmstrip.errors import DataError, FilmstripError, ResourceError, TemporaryError
from filmstrip.queue import Job, JobQueue, QueueOptions
from filmstrip.services.worker.processor import _count_failure


def retries(category: str) -> float:
    return REGISTRY.get_sample_value("filmstrip_job_retries_total", {"category": category}) or 0.0


def job(queue: JobQueue, attempt: int, attempts: int = 3) -> Job:
    return Job(id="photo:m", entry_id="1-0", priority=5, payload=b"{}", attempt=attempt,
               attempts=attempts, deferrals=0, backoff_ms=1000, store=queue)  # fmt: skip


async def test_only_retryable_errors_with_attempts_left_count_as_retries(
    redis: aioredis.Redis,
) -> None:
    queue = JobQueue(redis, QueueOptions())
    cases: list[tuple[int, FilmstripError, str, float]] = [
        (1, TemporaryError("blip"), "TEMPORARY", 1),
        (2, ResourceError("busy"), "RESOURCE", 1),
        (3, TemporaryError("last try"), "TEMPORARY", 0),  # dead-lettered, not retried
        (1, DataError("corrupt"), "DATA", 0),
    ]
    for attempt, error, category, expected in cases:
        before = retries(category)
        assert _count_failure(job(queue, attempt), error) == category
        assert retries(category) - before == expected, (attempt, category)
