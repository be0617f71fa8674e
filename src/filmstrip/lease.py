"""A lock in Redis that a dead holder lets go of: an owner token and a short lease,
renewed while the holder works.

``SET key <token> NX PX ttl`` takes it; a script renews it (``PEXPIRE``) and another
releases it (``DEL``), each only while the key still holds this holder's token, so a
holder whose lease ran out can neither extend nor delete its successor's. A process
SIGKILLed mid-work stops renewing, and the key expires within ``ttl_s``.

Why Redis and not a PostgreSQL advisory lock: every deployment has Redis (the embedded
one runs SQLite, which has none), and a session advisory lock would pin a catalog
connection for the whole of a long round (and does not survive a transaction-pooling
proxy such as PgBouncer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from filmstrip.redis_client import RedisClient

log = logging.getLogger("filmstrip.lease")

# One key each: a script's keys stay in one slot on a Redis Cluster.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """The lease ran out (not renewed in time) while its work ran; the work was cancelled."""


class Lease:
    """One holder's claim on ``key``: at most one holder at a time across processes."""

    def __init__(self, redis: RedisClient, key: str, *, ttl_s: float) -> None:
        self.key = key
        self.ttl_ms = max(int(ttl_s * 1000), 1)
        self.token = secrets.token_hex(16)
        self._redis = redis
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        return bool(await self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        """Extend the lease by ``ttl_s``; False if it is no longer ours."""
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def release(self) -> None:
        """Let go, if it is still ours (best effort: otherwise it expires)."""
        try:
            await self._release(keys=[self.key], args=[self.token])
        except (RedisError, OSError) as exc:
            log.warning("could not release %s (it expires by itself): %s", self.key, exc)

    async def run(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Run ``work`` holding the lease, renewed every third of its lifetime; False (and
        nothing run) if another holder has it. :class:`LeaseLost` if it could not be
        renewed before running out: another process may have taken over, so ``work`` is
        cancelled rather than left running beside it."""
        if not await self.acquire():
            return False
        task = asyncio.ensure_future(work())
        keeper = asyncio.ensure_future(self._keep(task))
        try:
            await asyncio.wait([task, keeper], return_when=asyncio.FIRST_COMPLETED)
            if not task.done():  # cancelled below, before the lease is released
                raise LeaseLost(f"lost {self.key} while its work ran")
            task.result()
            return True
        finally:
            for pending in (task, keeper):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pending
            await self.release()

    async def _keep(self, task: asyncio.Future[None]) -> None:
        """Renew until ``task`` ends; return early once the lease is lost."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        step = self.ttl_ms / 3000
        while not task.done():
            await asyncio.sleep(step)
            try:
                if not await self.renew():
                    return  # expired and perhaps taken: ours no more
                renewed = loop.time()
            except (RedisError, OSError) as exc:
                # Redis blinked: keep trying while the lease may still stand.
                if loop.time() - renewed >= self.ttl_ms / 1000:
                    log.warning("could not renew %s in time: %s", self.key, exc)
                    return
