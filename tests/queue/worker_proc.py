"""A worker process for the fault tests: runs a Consumer and records completions in Redis.

    python -m tests.queue.worker_proc <redis_url> <queue> <name> <concurrency> <vis_ms> <job_ms>

Each completed job sets ``<queue>:done[<id>] = <name>`` and bumps ``<queue>:runs[<id>]``.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from filmstrip.queue import Consumer, Job, JobQueue, QueueOptions


async def main(
    url: str, name: str, worker: str, concurrency: int, vis_ms: int, job_ms: int
) -> None:
    redis = aioredis.Redis.from_url(url)
    queue = JobQueue(redis, QueueOptions(name=name, visibility_timeout_ms=vis_ms, block_ms=100))

    async def handler(job: Job) -> None:
        await asyncio.sleep(job_ms / 1000)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(f"{name}:done", job.id, worker)
            pipe.hincrby(f"{name}:runs", job.id, 1)
            await pipe.execute()

    consumer = Consumer(queue, handler, concurrency=concurrency, name=worker)
    consumer.install_signal_handlers()
    await redis.set(f"{name}:ready:{worker}", 1)
    await consumer.run()
    await redis.aclose()


if __name__ == "__main__":
    url, name, worker, conc, vis, job_ms = sys.argv[1:7]
    asyncio.run(main(url, name, worker, int(conc), int(vis), int(job_ms)))
