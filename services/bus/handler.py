"""The ``/ws`` endpoint: reads one socket's messages and acts on them.

Only this task reads the socket; replies and events go through the socket's send queue.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from filmstrip.auth import hash_token
from filmstrip.protocols import ws
from filmstrip.services.bus import codec, streamid
from filmstrip.services.bus.authorizer import Authorizer, Refused
from filmstrip.services.bus.client_sockets import ClientSockets
from filmstrip.services.bus.connection import Connection
from filmstrip.services.bus.hub import Hub
from filmstrip.services.bus.lifecycle import State
from filmstrip.services.bus.ratelimit import TokenBucket
from filmstrip.services.bus.replay import ReplayReader
from filmstrip.services.bus.routing import client_room, photo_room, session_room
from filmstrip.settings import Settings

log = logging.getLogger("filmstrip.bus.handler")


class SocketHandler:
    """Upgrades a request and runs its socket until it closes."""

    def __init__(
        self,
        settings: Settings,
        hub: Hub,
        authorizer: Authorizer,
        replay: ReplayReader,
        sockets: ClientSockets,
    ) -> None:
        self._s = settings
        self._hub = hub
        self._auth = authorizer
        self._replay = replay
        self._sockets = sockets

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        s = self._s
        socket = web.WebSocketResponse(
            heartbeat=s.bus.heartbeat_s,
            max_msg_size=s.bus.max_message_bytes,
            # Events are small JSON sent to many sockets: compression costs more CPU per
            # socket than the bytes it saves.
            compress=False,
            timeout=s.bus.close_timeout_s,
        )
        await socket.prepare(request)
        conn = Connection(
            socket,
            request,
            socket_id=uuid.uuid4().hex,
            queue_size=s.bus.send_queue,
            close_timeout_s=s.bus.close_timeout_s,
            rate=TokenBucket(s.bus.rate_per_s, s.bus.rate_burst),
        )
        self._hub.add(conn)
        conn.start()
        try:
            await self._read(conn)
        finally:
            self._hub.remove(conn)
            await self._sockets.release(conn.socket_id)
            await conn.finished()
        return socket

    async def _read(self, conn: Connection) -> None:
        socket = conn.socket
        loop = asyncio.get_running_loop()
        identify_by = loop.time() + self._s.bus.identify_timeout_s
        while conn.lifecycle.open:
            timeout = None
            if conn.lifecycle.state is State.CONNECTED:
                timeout = identify_by - loop.time()
                if timeout <= 0:
                    await conn.close(ws.CLOSE_POLICY, "identify timeout")
                    return
            try:
                msg = await socket.receive(timeout=timeout)
            except TimeoutError:
                continue  # the deadline check above closes the socket
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                await self._on_frame(conn, msg.data)
            else:
                # CLOSE/CLOSING/CLOSED, or ERROR (aiohttp has already closed the socket,
                # e.g. with 1009 for a frame over max_msg_size).
                return

    async def _on_frame(self, conn: Connection, frame: str | bytes) -> None:
        if not conn.rate.take():
            conn.reply(ws.Error(code=ws.RATE_LIMITED, message="too many messages; dropped"))
            return
        try:
            message = codec.decode(frame)
        except codec.BadMessage as exc:
            conn.reply(ws.Error(code=ws.BAD_MESSAGE, message=str(exc)))
            return
        refusal = conn.lifecycle.refusal(message)
        if refusal is not None:
            conn.reply(refusal)
            return
        try:
            await self._dispatch(conn, message)
        except Refused as exc:
            conn.reply(exc.error)
            if exc.error.code == ws.UNAUTHORIZED or exc.error.code == ws.TOO_MANY_SOCKETS:
                await conn.close(ws.CLOSE_POLICY, exc.error.code, flush=True)
        except RedisError as exc:
            # The cause (addresses, Redis's own words) is for the log, not for any client.
            log.warning("redis unavailable for %s: %s", type(message).__name__, exc)
            conn.reply(
                ws.Error(code=ws.UNAVAILABLE, message="events are unavailable; try again shortly")
            )

    async def _dispatch(self, conn: Connection, message: ws.ClientMessage) -> None:
        if isinstance(message, ws.Ping):
            conn.reply(ws.Pong())
        elif isinstance(message, ws.Identify):
            await self._identify(conn, message)
        elif isinstance(message, ws.Subscribe):
            room = photo_room(message.photo_id)
            if room not in conn.rooms and conn.photo_rooms >= self._s.bus.max_photos_per_socket:
                raise self._too_many_rooms()
            await self._auth.check_photo(_client(conn), message.photo_id)
            if room in conn.rooms:
                conn.reply(ws.Subscribed(room=room))
                return
            # What the photo published since the socket identified (or since the id it
            # replayed from) and reached none of its other rooms is sent after the reply.
            after = conn.resumed_from if conn.resumed_from is not None else conn.floor
            await self._hub.join_photo(
                conn, message.photo_id, after, lambda: conn.reply(ws.Subscribed(room=room))
            )
        elif isinstance(message, ws.Unsubscribe):
            room = photo_room(message.photo_id)
            self._hub.leave_photo(conn, message.photo_id, keep=self._s.bus.max_photos_per_socket)
            conn.reply(ws.Unsubscribed(room=room))
        elif isinstance(message, ws.Resume):
            await self._resume(conn, message)

    def _too_many_rooms(self) -> Refused:
        limit = self._s.bus.max_photos_per_socket
        return Refused(
            ws.Error(code=ws.TOO_MANY_ROOMS, message=f"at most {limit} photos per socket")
        )

    async def _identify(self, conn: Connection, message: ws.Identify) -> None:
        client_id = await self._auth.identify(message.token, message.session_id)
        photo_ids = [
            photo_id
            for photo_id in dict.fromkeys(message.photo_ids)
            if await self._auth.owns_photo(client_id, photo_id)
        ]
        if len(photo_ids) > self._s.bus.max_photos_per_socket:
            raise self._too_many_rooms()
        # Counted across every bus process (in Redis), not only this one's sockets.
        if not await self._sockets.admit(client_id, conn.socket_id):
            raise Refused(
                ws.Error(
                    code=ws.TOO_MANY_SOCKETS,
                    message=f"at most {self._s.bus.max_sockets_per_client} sockets per client",
                )
            )
        conn.token_hash = hash_token(message.token)
        subscriptions = self._hub.subscriptions
        conn.floor = await self._replay.head(client_id)
        conn.cursor.join_at(conn.floor)
        conn.lifecycle.move(State.IDENTIFIED)
        self._hub.identified(conn, client_id)
        # The event subscription came up while the head was read: what was published
        # between the head and the subscription came live to no one, and the hub's
        # catch-up did not count this socket (not yet identified). Replay it here.
        behind = self._hub.subscriptions != subscriptions
        if message.last_event_id is not None or behind:
            conn.hold()  # from joining the rooms until the replay is sent
        conn.reply(
            ws.Identified(
                socket_id=conn.socket_id,
                client_id=client_id,
                last_event_id=streamid.format_id(conn.floor),
                photo_ids=photo_ids,
            )
        )
        self._hub.join(conn, client_room(client_id))
        if message.session_id is not None:
            self._hub.join(conn, session_room(message.session_id))
        for photo_id in photo_ids:
            self._hub.join(conn, photo_room(photo_id))
        if message.last_event_id is not None:
            # If Redis fails here the socket stays identified: ``resume`` may try again.
            # This replay also covers the gap of a socket ``behind``: it reads to the end.
            await self._replay_after(conn, message.last_event_id)
        elif behind:
            await self._catch_up(conn)

    async def _catch_up(self, conn: Connection) -> None:
        """Replay the events after the socket's floor, held since identify; if Redis fails,
        close it so its client resumes rather than silently missing them."""
        try:
            await self._hub.replay(conn, conn.floor, resume=False)
        except RedisError as exc:
            log.warning("catch-up after identify failed: %s", exc)
            await conn.close(ws.CLOSE_SERVICE_RESTART, "events could not be replayed; resume")
        finally:
            conn.release()

    async def _resume(self, conn: Connection, message: ws.Resume) -> None:
        if conn.resumed_from is not None:
            conn.reply(ws.Error(code=ws.BAD_MESSAGE, message="this socket has already resumed"))
            return
        conn.hold()
        await self._replay_after(conn, message.last_event_id)

    async def _replay_after(self, conn: Connection, last_event_id: str) -> None:
        """Replay what the socket's rooms got after ``last_event_id``, then ``resumed``, then
        release the live events held since the request (the caller's :meth:`hold`)."""
        after = streamid.parse(last_event_id)
        client_id = _client(conn)

        try:
            truncated = await self._replay.truncated_after(client_id, after)

            def done(count: int) -> None:
                conn.reply(
                    ws.Resumed(
                        replayed=count,
                        last_event_id=streamid.format_id(conn.cursor.high),
                        truncated=truncated,
                    )
                )

            await self._hub.replay(conn, after, resume=True, done=done)
        finally:
            conn.release()
        # Only now: a resume that Redis failed did not happen, and the client may retry it.
        conn.resumed_from = after


def _client(conn: Connection) -> str:
    assert conn.client_id is not None  # the lifecycle only lets identified sockets here
    return conn.client_id
