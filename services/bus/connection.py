"""One connected socket: its state, rooms, delivery cursor and bounded send queue.

Every socket has its own queue and sender task, so a client that stops reading fills only
its own queue; when that is full the socket is closed with 1013 and nobody else waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiohttp import WSMsgType, web

from filmstrip.protocols import ws
from filmstrip.services.bus import codec
from filmstrip.services.bus.cursor import BufferOverflow, DeliveryCursor
from filmstrip.services.bus.lifecycle import Lifecycle, State
from filmstrip.services.bus.ratelimit import TokenBucket
from filmstrip.services.bus.streamid import StreamId

log = logging.getLogger("filmstrip.bus.connection")


class Connection:
    """A socket as the hub sees it. ``send``/``offer_live`` never block."""

    def __init__(
        self,
        socket: web.WebSocketResponse,
        request: web.Request,
        *,
        socket_id: str,
        queue_size: int,
        close_timeout_s: float,
        rate: TokenBucket,
    ) -> None:
        self.socket = socket
        self.request = request
        self.socket_id = socket_id
        self.lifecycle = Lifecycle()
        self.client_id: str | None = None
        # Kept to check the token again later (revocation); the token itself is not kept.
        self.token_hash: str | None = None
        self.rooms: set[str] = set()
        self.cursor = DeliveryCursor(buffer_limit=queue_size)
        self.rate = rate
        # Where the client's replay started (``identify``'s or ``resume``'s
        # ``last_event_id``), once it has replayed: it has every event after it.
        self.resumed_from: StreamId | None = None
        # Told how many held-back events a release delivered (the hub counts deliveries).
        self.on_released: Callable[[int], None] | None = None
        # Told how many frames a cut-off socket never got (the hub counts drops).
        self.on_dropped: Callable[[int], None] | None = None
        # The client stream's last id when the socket identified: a catch-up after a lost
        # subscription starts here at the earliest, so it never replays older history.
        self.floor: StreamId = (0, 0)
        # Per photo room the socket left, its cursor then: a subscribe again catches up
        # only from there (what came before, it had). Oldest first, at most as many as
        # the photos a socket may follow.
        self.left_photos: dict[str, StreamId] = {}
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._close_timeout = close_timeout_s
        self._sender: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._holding = False

    @property
    def photo_rooms(self) -> int:
        return sum(1 for room in self.rooms if room.startswith("photo:"))

    def __repr__(self) -> str:
        return f"<Connection {self.socket_id} {self.lifecycle.state.value} {self.client_id}>"

    # --- sending ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sender task (after the WebSocket handshake)."""
        self._sender = asyncio.create_task(self._send_loop(), name=f"bus-send-{self.socket_id}")

    def send(self, frame: bytes) -> None:
        """Queue one text frame; close the socket with 1013 if its queue is full."""
        if not self.lifecycle.open:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            # This frame and the queued ones go unsent: the close does not flush them.
            if self.on_dropped is not None:
                self.on_dropped(1 + self._queue.qsize())
            self.kick(ws.CLOSE_TRY_AGAIN_LATER, "send queue full: the client reads too slowly")

    def reply(self, message: ws.ServerMessage) -> None:
        self.send(codec.encode(message))

    def offer_live(self, sid: StreamId, frame: bytes) -> bool:
        """Send a live event unless the cursor holds it back or has sent it already."""
        try:
            if self.cursor.offer_live(sid, frame):
                self.send(frame)
                return True
        except BufferOverflow:
            if self.on_dropped is not None:
                self.on_dropped(1)
            self.kick(ws.CLOSE_TRY_AGAIN_LATER, "too many events during replay")
        return False

    # --- holding live events back while a replay starts ----------------------------------------

    def hold(self) -> None:
        """Hold live events back until :meth:`release`: from the moment a socket asks for a
        replay (``identify`` with ``last_event_id``, ``resume``) until it is done, so the
        replayed events and the live ones arrive in stream order. Never otherwise: a socket
        that does not ask for a replay gets each event at once."""
        self.cursor.begin_replay()
        self._holding = True

    def release(self) -> None:
        """End the hold: send the live events held back, in order."""
        if not self._holding:
            return
        self._holding = False
        try:
            frames = self.cursor.end_replay(resumed=False)
        except BufferOverflow:
            self.kick(ws.CLOSE_TRY_AGAIN_LATER, "too many events while held")
            return
        for frame in frames:
            self.send(frame)
        if frames and self.on_released is not None:
            self.on_released(len(frames))

    async def _send_loop(self) -> None:
        queue = self._queue
        socket = self.socket
        try:
            while True:
                frame = await queue.get()
                try:
                    # Awaiting each send applies TCP back-pressure to this socket alone.
                    await socket.send_frame(frame, WSMsgType.TEXT)
                finally:
                    queue.task_done()
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away mid-send; the reader will see the close.
            log.debug("send failed", extra={"socket_id": self.socket_id, "error": str(exc)})

    async def flush(self) -> None:
        """Wait until the frames queued so far are sent (at most the close timeout)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._close_timeout):
                await self._queue.join()

    # --- closing ---------------------------------------------------------------------------

    def kick(self, code: int, reason: str) -> None:
        """Start closing with ``code`` (from any task, without waiting)."""
        if not self.lifecycle.open:
            return
        log.info(
            "closing socket",
            extra={"socket_id": self.socket_id, "client_id": self.client_id, "code": code,
                   "reason": reason},
        )  # fmt: skip
        self._closer = asyncio.create_task(self.close(code, reason))

    async def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close with ``code``. With ``flush``, frames already queued (such as the error
        that explains the close) are sent first; otherwise they are dropped. Idempotent."""
        if self.lifecycle.open:
            self.lifecycle.move(State.CLOSING)
        elif self.lifecycle.state is not State.CLOSING:
            return
        if flush and self._sender is not None and not self._sender.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout):
                    await self._queue.join()
        await self._stop_sender()
        # drain=False: a client that does not read must not hold this task; aiohttp closes
        # the transport itself if the close handshake does not finish in time.
        done = False
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._close_timeout):
                await self.socket.close(code=code, message=reason.encode()[:120], drain=False)
                done = True
        if not done:
            # The peer never answered the close (it is not reading): drop the connection
            # rather than keep its unread frames buffered here.
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    async def _stop_sender(self) -> None:
        sender = self._sender
        if sender is None or sender.done():
            return
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender

    async def finished(self) -> None:
        """Called by the handler when the socket is gone: stop the tasks."""
        if self.lifecycle.state is not State.CLOSED:
            if self.lifecycle.open:
                self.lifecycle.move(State.CLOSING)
            self.lifecycle.move(State.CLOSED)
        await self._stop_sender()
        closer = self._closer
        if closer is not None and not closer.done() and closer is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await closer
