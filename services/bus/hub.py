"""The hub: this process's sockets and rooms, live fan-out and replay.

Sockets are partitioned by room locally; every bus process receives every event from
Redis and delivers it only to its own sockets, so a socket gets each event exactly once
whichever process it is on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from filmstrip.protocols import ws
from filmstrip.protocols.events import PHOTO_UPLOADED
from filmstrip.services.bus import streamid, wire
from filmstrip.services.bus.connection import Connection
from filmstrip.services.bus.replay import ReplayReader
from filmstrip.services.bus.rooms import Rooms
from filmstrip.services.bus.routing import photo_room
from filmstrip.services.bus.streamid import StreamId

log = logging.getLogger("filmstrip.bus.hub")

# A catch-up whose replay failed is tried again this many rounds in all, after 0.2, 0.4,
# 0.8 ... s: long enough for a restarted Redis to take connections again.
CATCH_UP_ROUNDS = 5
CATCH_UP_FIRST_DELAY_S = 0.2


class Hub:
    """Routes published events to local sockets and replays missed ones."""

    def __init__(self, replay: ReplayReader) -> None:
        self._replay = replay
        self.rooms: Rooms[Connection] = Rooms()
        self.connections: set[Connection] = set()
        self._per_client: dict[str, int] = {}
        self.delivered = 0
        self.dropped = 0
        self.added = 0  # sockets accepted since start
        self.removed = 0  # sockets gone since start
        # How many times the event subscription has come up: a socket whose identify read
        # its stream's head across a change of it was in no catch-up (see ``subscribed``).
        self.subscriptions = 0

    # --- membership ------------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.added += 1
        conn.on_released = self._count_released
        conn.on_dropped = self._count_dropped

    def identified(self, conn: Connection, client_id: str) -> None:
        conn.client_id = client_id
        self._per_client[client_id] = self._per_client.get(client_id, 0) + 1

    def join(self, conn: Connection, room: str) -> None:
        conn.rooms.add(room)
        self.rooms.join(room, conn)

    def leave(self, conn: Connection, room: str) -> None:
        conn.rooms.discard(room)
        self.rooms.leave(room, conn)

    def leave_photo(self, conn: Connection, photo_id: str, *, keep: int) -> None:
        """Unsubscribe ``conn`` from a photo, remembering where it stood (for the newest
        ``keep`` photos left), so a later subscribe does not send what it had again."""
        room = photo_room(photo_id)
        if room not in conn.rooms:
            return
        self.leave(conn, room)
        conn.left_photos.pop(photo_id, None)
        conn.left_photos[photo_id] = conn.cursor.high
        while len(conn.left_photos) > keep:
            del conn.left_photos[next(iter(conn.left_photos))]

    def remove(self, conn: Connection) -> None:
        """Forget a socket that has gone."""
        self.rooms.leave_all(conn.rooms, conn)
        conn.rooms.clear()
        if conn in self.connections:
            self.connections.discard(conn)
            self.removed += 1
        if conn.client_id is not None:
            left = self._per_client.get(conn.client_id, 1) - 1
            if left > 0:
                self._per_client[conn.client_id] = left
            else:
                self._per_client.pop(conn.client_id, None)

    @property
    def identified_count(self) -> int:
        return sum(self._per_client.values())

    # --- live ------------------------------------------------------------------------------

    def publish(self, message: bytes) -> None:
        """Deliver one pub/sub message (``<stream id> <json>``) to the sockets in its rooms."""
        try:
            sid, body = wire.split_message(message)
            event = wire.route(sid, body)
        except wire.BadEvent as exc:
            log.warning("skipping an event the bus cannot route", extra={"error": str(exc)})
            return
        members = self.rooms.members(event.rooms)
        if not members:
            return
        debug = log.isEnabledFor(logging.DEBUG)
        for conn in members:
            # Rooms are joined only after authorization, but the owner check here keeps a
            # routing bug from ever leaking another client's event.
            if conn.client_id != event.client_id:
                continue
            if conn.offer_live(event.id, event.frame):
                self.delivered += 1
                if debug:
                    log.debug(
                        "event delivered",
                        extra={"trace_id": event.trace_id, "socket_id": conn.socket_id,
                               "event_id": streamid.format_id(event.id)},
                    )  # fmt: skip

    def _count_dropped(self, count: int) -> None:
        # Frames a too-slow socket never got before it was closed with 1013.
        self.dropped += count

    def _count_released(self, count: int) -> None:
        # Live events a socket held back (waiting for its resume) are delivered on release.
        self.delivered += count

    # --- replay ----------------------------------------------------------------------------

    async def replay(
        self,
        conn: Connection,
        after: StreamId,
        *,
        resume: bool,
        done: Callable[[int], None] | None = None,
    ) -> int:
        """Send ``conn`` the retained events after ``after`` that its rooms would have got,
        call ``done(count)`` (to mark the seam), then send the live events held back
        meanwhile. Returns how many were replayed. A resume that fails part way leaves the
        cursor unresumed, so a retried one still skips exactly the events already sent."""
        client_id = conn.client_id
        assert client_id is not None
        conn.cursor.begin_replay()
        sent = 0
        completed = False
        try:
            async for raw_id, body in self._replay.entries_after(client_id, after):
                if not conn.lifecycle.open:
                    break
                try:
                    event = wire.route(raw_id, body)
                except wire.BadEvent:
                    continue
                if not conn.rooms.intersection(event.rooms):
                    continue
                if conn.cursor.accept_replayed(event.id, after, resume=resume):
                    conn.send(event.frame)
                    sent += 1
            if done is not None:
                done(sent)
            completed = True
        finally:
            released = conn.cursor.end_replay(resumed=resume and completed)
            for frame in released:
                conn.send(frame)
            self.delivered += len(released)
        self.delivered += sent
        return sent

    async def join_photo(
        self,
        conn: Connection,
        photo_id: str,
        after: StreamId,
        joined: Callable[[], None],
    ) -> int:
        """Join the photo's room, call ``joined()`` (to answer ``subscribed``), then send the
        photo's events after ``after`` that none of the socket's other rooms brought it and
        that are newer than the newest of the photo those rooms did bring, in order, then the
        live events held back meanwhile: a client that subscribes after its upload's ``201``
        misses nothing and never gets a photo's event after a newer one of it. Returns how
        many were sent from the stream. If Redis fails, the socket is left out of the room,
        nothing was sent, and it raises."""
        client_id = conn.client_id
        assert client_id is not None
        room = photo_room(photo_id)
        # Followed before: what the photo published up to the unsubscribe, it was sent.
        after = max(after, conn.left_photos.get(photo_id, streamid.ZERO))
        others = set(conn.rooms)
        self.join(conn, room)
        conn.cursor.begin_replay()  # live events of the room wait until its past is sent
        found: list[wire.RoutedEvent] = []
        # The photo's events the socket's other rooms brought (or are bringing) it.
        brought: list[StreamId] = []
        sent = 0
        try:
            try:
                async for raw_id, body in self._replay.entries_newest_first(client_id, after):
                    try:
                        event = wire.route(raw_id, body)
                    except wire.BadEvent:
                        continue
                    if event.photo_id != photo_id:
                        continue
                    if others.intersection(event.rooms):
                        brought.append(event.id)
                    elif room in event.rooms:
                        found.append(event)
                    if event.type == PHOTO_UPLOADED:
                        break  # the photo's first event: nothing of it is older
            except BaseException:
                self.leave(conn, room)
                raise
            joined()
            conn.left_photos.pop(photo_id, None)
            # Live events are held, so those at or below ``high`` were sent before the
            # catch-up: an older event of the photo after them would take its state back
            # (processing after completed). A newer one still on its way arrives after.
            high = conn.cursor.high
            had = max((sid for sid in brought if sid <= high), default=streamid.ZERO)
            for event in reversed(found):
                if conn.cursor.accept_backfill(event.id, newer_than=had):
                    conn.send(event.frame)
                    sent += 1
        finally:
            released = conn.cursor.end_replay(resumed=False)
            for frame in released:
                conn.send(frame)
            self.delivered += len(released) + sent
        return sent

    def subscribed(self) -> Coroutine[Any, Any, None]:
        """The event subscription is (again) up: hold back the live events of every
        identified socket, at once, before the subscription's first event, and return the
        catch-up that replays each one's gap and then releases them.

        A live event sent before its socket's gap would raise the socket's cursor past the
        gap, and the replay, which starts at the cursor, would never send it.
        """
        self.subscriptions += 1
        held = [c for c in self.connections if c.client_id is not None and c.lifecycle.open]
        for conn in held:
            conn.cursor.begin_replay()
        return self._catch_up(held)

    async def _catch_up(self, held: list[Connection]) -> None:
        """Replay each held socket's gap, then send it the live events held meanwhile.

        Redis may still be coming back (its old connections fail at first), so sockets
        whose replay failed are tried again a few times (still held); one whose gap still
        cannot be replayed is closed with 1012, so its client reconnects and resumes
        instead of silently missing what was published in the gap.
        """
        log.info("catching up sockets after subscribing", extra={"sockets": len(held)})
        holding = set(held)
        try:
            await self._replay_gaps(held, holding)
        finally:
            for conn in holding:
                self._release(conn)

    async def _replay_gaps(self, pending: list[Connection], holding: set[Connection]) -> None:
        delay = CATCH_UP_FIRST_DELAY_S
        error = ""
        for round_ in range(CATCH_UP_ROUNDS):
            if round_:
                await asyncio.sleep(delay)
                delay *= 2
            failed = []
            for conn in pending:
                if not conn.lifecycle.open:
                    continue
                try:
                    await self.replay(conn, max(conn.cursor.high, conn.floor), resume=False)
                except Exception as exc:
                    failed.append(conn)
                    error = str(exc)
                else:
                    holding.discard(conn)
                    self._release(conn)
                await asyncio.sleep(0)
            if not failed:
                return
            pending = failed
        for conn in pending:
            log.warning(
                "catch-up failed; closing the socket so its client resumes",
                extra={"socket_id": conn.socket_id, "error": error},
            )
            await conn.close(
                ws.CLOSE_SERVICE_RESTART, "events could not be replayed; reconnect and resume"
            )

    def _release(self, conn: Connection) -> None:
        """End a catch-up's hold on ``conn``: send the live events it held, in order."""
        frames = conn.cursor.end_replay(resumed=False)
        for frame in frames:
            conn.send(frame)
        self.delivered += len(frames)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every socket (shutdown)."""
        await asyncio.gather(
            *(c.close(code, reason) for c in list(self.connections)), return_exceptions=True
        )
