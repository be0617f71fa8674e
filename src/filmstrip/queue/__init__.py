"""Placeholder queue (walking skeleton); replaced by the full queue package."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from filmstrip.errors import FilmstripError, TemporaryError
from filmstrip.settings import Settings

log = logging.getLogger(__name__)


class QueueOptions(msgspec.Struct, frozen=True, kw_only=True):
    name: str = "photo-processing"
    concurrency: int = 3

    @classmethod
    def from_settings(cls, s: Settings) -> QueueOptions:
        return cls(name=s.queue_name, concurrency=s.worker_concurrency)


class AddResult(msgspec.Struct, frozen=True):
    job_id: str
    created: bool


class Job:
    def __init__(self, id: str, payload: bytes) -> None:
        self.id = id
        self.payload = payload
        self.attempt = 1
        self.attempts = 1

    async def update_progress(self, pct: int) -> None:
        return None


class JobQueue:
    def __init__(self, redis: aioredis.Redis, options: QueueOptions) -> None:
        self.redis = redis
        self.options = options

    async def add(self, job_id: str, payload: bytes, *, priority: int = 5) -> AddResult:
        try:
            if not await self.redis.set(f"job:{job_id}", payload, nx=True):
                return AddResult(job_id, False)
            await self.redis.xadd(self.options.name, {"id": job_id})
        except RedisError as exc:
            raise TemporaryError(str(exc), code="queue_unavailable") from exc
        return AddResult(job_id, True)

    async def cancel(self, job_id: str) -> bool:
        return False

    async def counts(self) -> dict[str, int]:
        try:
            n = await self.redis.xlen(self.options.name)
        except RedisError as exc:
            raise TemporaryError(str(exc), code="queue_unavailable") from exc
        return {"waiting": int(n), "active": 0, "delayed": 0, "completed": 0, "failed": 0}


class Consumer:
    def __init__(
        self,
        queue: JobQueue,
        handler: Callable[[Job], Awaitable[None]],
        *,
        on_failed: Callable[[Job, FilmstripError], Awaitable[None]] | None = None,
        concurrency: int = 3,
        name: str | None = None,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.on_failed = on_failed
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._stop = asyncio.Event()

    async def run(self) -> None:
        r = self.queue.redis
        stream = self.queue.options.name
        try:
            await r.xgroup_create(stream, "workers", id="0", mkstream=True)
        except RedisError:
            pass
        while not self._stop.is_set():
            resp: Any = await r.xreadgroup("workers", self.name, {stream: ">"}, count=1, block=500)
            for _s, entries in resp or []:
                for entry_id, fields in entries:
                    job_id = fields[b"id"].decode()
                    payload = await r.get(f"job:{job_id}")
                    job = Job(job_id, payload or b"")
                    try:
                        await self.handler(job)
                    except FilmstripError as exc:
                        if self.on_failed:
                            await self.on_failed(job, exc)
                    await r.xack(stream, "workers", entry_id)
                    await r.xdel(stream, entry_id)

    async def stop(self) -> None:
        self._stop.set()
