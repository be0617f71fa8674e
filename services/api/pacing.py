"""Cutting request bodies that stall or trickle (slowloris on the body).

aiohttp waits for body bytes forever; a client that opens many uploads and sends a byte now
and then would hold a connection, a handler task and a temp file each. :class:`BodyPace`
wraps every read of an upload body: no bytes for ``idle_s`` seconds, or fewer than
``min_bytes_per_s`` on average once ``idle_s`` has passed, ends the request with 408.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from filmstrip.services.api.errors import ApiError
from filmstrip.settings import Settings

T = TypeVar("T")


class BodyPace:
    """Deadlines for one request body; raises ``ApiError(408, "request_timeout")``."""

    def __init__(self, *, idle_s: float, min_bytes_per_s: int) -> None:
        self._idle_s = idle_s
        self._min_rate = min_bytes_per_s
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self._received = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyPace:
        """The pace the api's settings ask of uploads."""
        return cls(
            idle_s=settings.api.upload_idle_timeout_s,
            min_bytes_per_s=settings.api.upload_min_bytes_per_s,
        )

    async def read(self, step: Awaitable[T]) -> T:
        """Await one read of the body; 408 if no bytes come within the idle timeout."""
        try:
            async with asyncio.timeout(self._idle_s) as deadline:
                return await step
        except TimeoutError:
            if deadline.expired():
                raise ApiError(
                    408,
                    "request_timeout",
                    f"no bytes of the request body arrived for {self._idle_s:g} s",
                ) from None
            raise

    def received(self, count: int) -> None:
        """Count ``count`` body bytes; 408 if the average rate is below the floor."""
        self._received += count
        elapsed = self._loop.time() - self._started
        if self._min_rate and elapsed > self._idle_s and self._received < self._min_rate * elapsed:
            raise ApiError(
                408,
                "request_timeout",
                f"the request body arrived at {self._received / elapsed:.0f} bytes/s,"
                f" below the minimum of {self._min_rate}",
            )
