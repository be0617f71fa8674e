"""The bus's one Redis pub/sub subscription, kept alive across Redis restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from protocols.events import CHANNELS

log = logging.getLogger("filmstrip.bus.subscriber")

_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0


class EventSubscriber:
    """Reads every event channel and hands each message to ``on_message`` at once.

    Redis cuts subscribers that fall behind (``client-output-buffer-limit pubsub``), so the
    read loop does no I/O per message. After a reconnect, ``on_resubscribed`` runs so the
    hub can fill the gap from the replay streams.
    """

    def __init__(
        self,
        redis_url: str,
        on_message: Callable[[bytes], None],
        on_resubscribed: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self._url = redis_url
        self._on_message = on_message
        self._on_resubscribed = on_resubscribed
        self.ready = asyncio.Event()
        self._catch_up: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.ready.is_set()

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled, reconnecting with backoff."""
        backoff = _BACKOFF_MIN_S
        first = True
        while True:
            client = aioredis.Redis.from_url(self._url, socket_keepalive=True)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*CHANNELS)
                self.ready.set()
                backoff = _BACKOFF_MIN_S
                if not first:
                    log.info("resubscribed to event channels")
                    self._catch_up = asyncio.create_task(self._on_resubscribed())
                first = False
                await self._read(pubsub)
            except (RedisError, OSError) as exc:
                if self.ready.is_set():
                    log.warning("event subscription lost", extra={"error": str(exc)})
                self.ready.clear()
            finally:
                self.ready.clear()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()
                except (RedisError, OSError):
                    pass
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        on_message = self._on_message
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None or message.get("type") != "message":
                continue
            try:
                on_message(message["data"])
            except Exception:
                # One bad event must never end the subscription.
                log.exception("could not dispatch an event")
