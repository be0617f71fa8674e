"""The bus's one Redis pub/sub subscription, kept alive across Redis restarts.

It speaks RESP on a plain asyncio connection instead of going through redis-py's PubSub:
every chunk the socket delivers is parsed and dispatched in one synchronous pass, with no
await per message. That halves the bus's CPU per event and keeps the read prompt, which
matters because Redis cuts subscribers that fall behind
(``client-output-buffer-limit pubsub``). The RESP codec is the one the script wire uses
(``filmstrip.compat.redis``); ``bench/bus_subscription.py`` measures the gain.

On a Redis Cluster a classic PUBLISH reaches the subscribers of every node, so one
subscription on any node hears every event; when that node goes away the subscriber moves
on to the next node it knows of (``nodes``: the cluster client's view of the topology).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from filmstrip.compat import redis as resp
from filmstrip.protocols.events import CHANNELS
from filmstrip.tasks import cancel_and_wait

log = logging.getLogger("filmstrip.bus.subscriber")

_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 2.0
# A PING every so often proves a quiet connection is alive; no bytes for _DEAD_S means not.
_PING_S = 5.0
_DEAD_S = 15.0
_CONNECT_TIMEOUT_S = 5.0


class _Protocol(asyncio.Protocol):
    def __init__(
        self, on_message: Callable[[bytes], None], on_subscribed: Callable[[], None]
    ) -> None:
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.subscribed = 0
        self.last_data = time.monotonic()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but have its interface.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        buf = self._buf
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                value, pos = resp.parse(buf, pos)
                self._dispatch(value)
        except resp.Incomplete:
            pass
        except Exception as exc:
            # A reply we cannot parse means we lost the framing: start over.
            log.exception("bad data on the event subscription")
            self._fail(exc)
            return
        del buf[:pos]

    def _dispatch(self, value: resp.Value) -> None:
        if isinstance(value, list) and value:
            kind = value[0]
            if kind == b"message":
                payload = value[2]
                if isinstance(payload, bytes):
                    try:
                        self._on_message(payload)
                    except Exception:
                        # One bad event must never end the subscription.
                        log.exception("could not dispatch an event")
            elif kind == b"subscribe":
                self.subscribed += 1
                if self.subscribed == len(CHANNELS) and not self.ready.done():
                    # Here, not once ``ready`` wakes its waiter: events may follow in this
                    # very chunk, and the hub must hold its sockets back before the first.
                    try:
                        self._on_subscribed()
                    except Exception:
                        log.exception("could not start the catch-up")
                    self.ready.set_result(None)
        elif isinstance(value, resp.RespError):
            self._fail(ConnectionError(f"redis refused the subscription: {value}"))

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        err = exc or ConnectionError("redis closed the subscription")
        if not self.ready.done():
            self.ready.set_exception(err)
        if not self.lost.done():
            self.lost.set_result(None)


class EventSubscriber:
    """Reads every event channel and hands each message to ``on_message`` at once.

    Each time the channels are subscribed (the first time too: sockets may have identified
    while Redis was down), ``on_subscribed`` is called at once, before the first event of
    the subscription is handed on, and the coroutine it returns runs as a task: the hub
    holds its sockets' live events back and fills the gap from the replay streams.
    ``redis_url`` is redis://, rediss:// or unix:// (user and password honoured).
    ``nodes``, on a cluster, lists the ``(host, port)`` of its nodes: each failed or lost
    subscription moves to the next of the URL's node and these.
    """

    def __init__(
        self,
        redis_url: str,
        on_message: Callable[[bytes], None],
        on_subscribed: Callable[[], Coroutine[Any, Any, None]],
        *,
        nodes: Callable[[], Sequence[tuple[str, int]]] | None = None,
    ) -> None:
        self._url = urlsplit(redis_url)
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._nodes = nodes
        self._turn = 0  # which of the candidate nodes the next connection tries
        self.node: tuple[str, int] | None = None  # where the subscription is (TCP only)
        self.ready = asyncio.Event()
        self._catch_ups: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self.ready.is_set()

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled, reconnecting with backoff."""
        try:
            await self._run()
        finally:
            # A catch-up still replaying must not outlive the subscriber (and the Redis
            # client it replays through, which the bus closes next).
            await cancel_and_wait(*self._catch_ups)

    def _subscribed(self) -> None:
        task = asyncio.create_task(self._on_subscribed())
        self._catch_ups.add(task)
        task.add_done_callback(self._catch_ups.discard)

    async def _run(self) -> None:
        backoff = _BACKOFF_MIN_S
        first = True
        while True:
            proto: _Protocol | None = None
            try:
                proto = await asyncio.wait_for(self._connect(), _CONNECT_TIMEOUT_S)
                self.ready.set()
                backoff = _BACKOFF_MIN_S
                if not first:
                    log.info("resubscribed to event channels")
                first = False
                await self._watch(proto)
                log.warning("event subscription lost")
            except (OSError, TimeoutError, ConnectionError) as exc:
                log.warning("could not subscribe to events", extra={"error": str(exc)})
            finally:
                self.ready.clear()
                self._turn += 1  # the next attempt tries the next node (on a cluster)
                if proto is not None and proto.transport is not None:
                    proto.transport.abort()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        url = self._url

        def factory() -> _Protocol:
            return _Protocol(self._on_message, self._subscribed)

        if url.scheme == "unix":
            _, proto = await loop.create_unix_connection(factory, url.path)
        else:
            tls = ssl.create_default_context() if url.scheme == "rediss" else None
            host, port = self._candidate()
            _, proto = await loop.create_connection(factory, host, port, ssl=tls)
            self.node = (host, port)
        assert proto.transport is not None
        out = b""
        if url.password:
            user = unquote(url.username) if url.username else None
            password = unquote(url.password)
            out += resp.command("AUTH", user, password) if user else resp.command("AUTH", password)
        out += resp.command("CLIENT", "SETNAME", "filmstrip-bus-events")
        out += resp.command("SUBSCRIBE", *CHANNELS)
        proto.transport.write(out)
        try:
            await proto.ready
        except BaseException:
            proto.transport.abort()  # refused, or timed out by the caller
            raise
        return proto

    def _candidate(self) -> tuple[str, int]:
        first = (self._url.hostname or "127.0.0.1", self._url.port or 6379)
        candidates = [first]
        if self._nodes is not None:
            candidates += [node for node in self._nodes() if node != first]
        return candidates[self._turn % len(candidates)]

    async def _watch(self, proto: _Protocol) -> None:
        """Return when the connection is lost or has gone quiet for too long."""
        assert proto.transport is not None
        while not proto.lost.done():
            done, _ = await asyncio.wait({proto.lost}, timeout=_PING_S)
            if done:
                return
            if time.monotonic() - proto.last_data > _DEAD_S:
                log.warning("event subscription silent; reconnecting")
                return
            proto.transport.write(resp.command("PING"))
