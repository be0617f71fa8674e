"""Queue depths by state, read from Redis when Prometheus scrapes (any role with a queue)."""

from __future__ import annotations

from prometheus_client import Gauge

from filmstrip.queue import JobQueue

JOBS = Gauge(
    "filmstrip_queue_jobs",
    "Jobs in the queue by state (paused is 1 while the queue is paused).",
    ["queue", "state"],
)
DEAD_LETTERED = Gauge(
    "filmstrip_queue_dead_letters",
    "Jobs currently held in the dead-letter set.",
    ["queue"],
)


async def refresh_depths(queue: JobQueue) -> None:
    """Read the queue's counts once and set the gauges (called before each exposition)."""
    counts = await queue.counts()
    name = queue.options.name
    for state, value in counts.items():
        JOBS.labels(name, state).set(value)
    DEAD_LETTERED.labels(name).set(counts.get("failed", 0))
