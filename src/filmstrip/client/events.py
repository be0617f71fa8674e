"""Following a client's events from the bus as an async iterator that keeps itself
connected: it identifies, joins the photos it follows, and after any drop reconnects and
resumes from the last event it yielded, so nothing is missed or repeated.

The handshake (one ``identify`` with the last event id and the followed photos) is
:meth:`EventStream._handshake`, the one place that knows the protocol
(``services/bus/README.md``).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import aiohttp
import msgspec

from filmstrip.client.errors import EventStreamError
from filmstrip.protocols import ws

_server = msgspec.json.Decoder(dict[str, Any])
_REPLY_TIMEOUT_S = 10.0


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """Events after ``last_event_id`` were trimmed from the bus's replay before this
    stream could resume: refetch what you follow over HTTP."""

    last_event_id: str


Item = ws.EventMessage | Gap


def event_order(event_id: str) -> tuple[int, int]:
    """A stream id (``<ms>-<seq>``) as a comparable pair."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class EventStream:
    """``async with EventStream(bus_url, token) as events: async for item in events``
    (or without ``async with``, then :meth:`close` it).

    Yields :class:`filmstrip.protocols.ws.EventMessage` (and :class:`Gap` if events were lost). The
    client's own room brings its upload and completion events; :meth:`follow` a photo for
    its processing stages too. ``last_event_id`` starts the stream after that event;
    without it the stream starts at the bus's newest event when it first connects
    (:meth:`connect`, or the first read).
    """

    def __init__(
        self,
        bus_url: str,
        token: str,
        *,
        session_id: str | None = None,
        last_event_id: str | None = None,
        heartbeat_s: float = 20.0,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.bus_url = bus_url
        #: The id of the last event yielded: where a new connection resumes.
        self.last_event_id = last_event_id
        self.reconnects = 0
        # The newest event queued (yielded or not), so none is queued twice.
        self._queued_id = last_event_id
        self._token = token
        self._session_id = session_id
        self._heartbeat_s = heartbeat_s
        self._max_backoff_s = max_backoff_s
        self._photos: set[str] = set()
        self._pending: collections.deque[Item] = collections.deque()
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def connect(self) -> None:
        """Connect now rather than at the first read: without ``last_event_id``, the
        stream then holds every event from this moment on."""
        if self._ws is None:
            self._ws = await self._connect()

    async def follow(self, photo_id: str) -> None:
        """Receive this photo's processing events too (kept across reconnects), those
        already published after the last event yielded included: the stream connects
        again, and the bus replays what the photo's room got since then, in order. At most
        :data:`filmstrip.protocols.ws.MAX_IDENTIFY_PHOTOS` photos (ValueError past that)."""
        if photo_id in self._photos:
            return
        if len(self._photos) >= ws.MAX_IDENTIFY_PHOTOS:
            raise ValueError(f"a stream follows at most {ws.MAX_IDENTIFY_PHOTOS} photos")
        self._photos.add(photo_id)
        if self._ws is not None:
            await self._drop()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Item:
        while True:
            if self._pending:
                item = self._pending.popleft()
                if isinstance(item, ws.EventMessage):
                    self.last_event_id = item.id
                return item
            if self._ws is None:
                await self.connect()
                continue
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._take(_server.decode(msg.data))
                continue
            # Closed (1001 bus stopping, 1013 too slow, a dead peer…): reconnect, resume.
            await self._drop()

    async def _drop(self) -> None:
        """Close the socket; the next read connects again and resumes from the last event
        yielded, so what was queued but not yet yielded comes again by the replay."""
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self.reconnects += 1
        self._pending = collections.deque(
            item for item in self._pending if not isinstance(item, ws.EventMessage)
        )
        self._queued_id = self.last_event_id

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        """A socket through the handshake, trying again with backoff until one is."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        delay = 0.2
        while True:
            socket: aiohttp.ClientWebSocketResponse | None = None
            try:
                socket = await self._http.ws_connect(self.bus_url, heartbeat=self._heartbeat_s)
                await self._handshake(socket)
                return socket
            except EventStreamError:
                if socket is not None:
                    await socket.close()
                raise
            except (aiohttp.ClientError, TimeoutError, ConnectionError, _Retry):
                if socket is not None:
                    await socket.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff_s)

    async def _handshake(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """One ``identify`` naming the followed photos and, once there is one, the last
        event id: the bus replays what came after it in order, then ``resumed``, then live
        events; what arrives during the handshake is queued to be yielded."""
        after = self.last_event_id
        await self._send(
            socket,
            ws.Identify(
                token=self._token,
                session_id=self._session_id,
                last_event_id=after,
                photo_ids=sorted(self._photos),
            ),
        )
        identified = await self._reply(socket, "identified")
        # A photo deleted meanwhile is not joined: nothing more will come of it.
        self._photos &= set(identified.get("photo_ids") or ())
        if after is None:
            # First connection: from the client's newest event on. After a drop before any
            # event arrived, resuming from it replays what came meanwhile.
            self.last_event_id = self._queued_id = str(identified["last_event_id"])
            return
        resumed = await self._reply(socket, "resumed")
        if resumed["truncated"]:
            self._pending.append(Gap(last_event_id=after))

    async def _reply(
        self, socket: aiohttp.ClientWebSocketResponse, expected: str
    ) -> dict[str, Any]:
        """Read up to the ``expected`` reply, queueing the events met on the way."""
        while True:
            msg = await socket.receive(timeout=_REPLY_TIMEOUT_S)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise _Retry(f"the bus closed the socket ({socket.close_code})")
            frame = _server.decode(msg.data)
            kind = frame.get("type")
            if kind == expected:
                return frame
            if kind == "error":
                if frame.get("code") == ws.UNAUTHORIZED:
                    raise EventStreamError(str(frame.get("message")), code=ws.UNAUTHORIZED)
                raise _Retry(str(frame.get("message")))
            self._take(frame)

    def _take(self, frame: dict[str, Any]) -> None:
        """Queue an event newer than the last one yielded; drop replies and repeats."""
        if not str(frame.get("type", "")).endswith(".event"):
            return  # subscribed, pong, a late error: nothing to yield
        event = msgspec.convert(frame, ws.EventMessage)
        if self._queued_id is not None and event_order(event.id) <= event_order(self._queued_id):
            return
        self._queued_id = event.id
        self._pending.append(event)

    async def _send(self, socket: aiohttp.ClientWebSocketResponse, message: Any) -> None:
        async with self._send_lock:
            await socket.send_bytes(msgspec.json.encode(message))


class _Retry(Exception):
    """The handshake failed in a way a new connection may not (closed, unavailable)."""
