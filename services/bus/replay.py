"""Reading a client's capped event stream to replay what a socket missed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import ResponseError

from filmstrip import keys
from filmstrip.redis_client import RedisClient
from filmstrip.services.bus import streamid
from filmstrip.services.bus.streamid import StreamId

_BATCH = 200
# The newest id, or the millisecond before now if none: atomically, so an event added
# right after is newer than what is returned.
_HEAD_SCRIPT = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest > 0 then return newest[1][1] end
local now = redis.call('TIME')
return tostring(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - 1) .. '-0'
"""
# Publishers trim by their own clocks: hosts a minute apart still agree on the window.
_CLOCK_SLACK_MS = 60_000


class ReplayReader:
    """XRANGE over ``keys.client_events(client_id)`` in batches; ``maxlen`` and ``age_s``
    are the publishers' trimming (``bus_replay_maxlen``, ``bus_replay_age_s``)."""

    def __init__(self, redis: RedisClient, *, maxlen: int = 1000, age_s: int = 86_400) -> None:
        self._redis = redis
        self._head = redis.register_script(_HEAD_SCRIPT)
        self._maxlen = maxlen
        self._age_ms = age_s * 1000

    async def entries_after(
        self, client_id: str, after: StreamId
    ) -> AsyncIterator[tuple[str, bytes]]:
        """``(stream id, event json)`` of every retained event after ``after``, in order."""
        async for entry in self._entries(client_id, after, newest_first=False):
            yield entry

    async def entries_newest_first(
        self, client_id: str, after: StreamId
    ) -> AsyncIterator[tuple[str, bytes]]:
        """``(stream id, event json)`` of the retained events after ``after``, newest first
        (a reader that finds what it wants near the end stops early)."""
        async for entry in self._entries(client_id, after, newest_first=True):
            yield entry

    async def _entries(
        self, client_id: str, after: StreamId, *, newest_first: bool
    ) -> AsyncIterator[tuple[str, bytes]]:
        key = keys.client_events(client_id)
        floor, edge = "(" + streamid.format_id(after), "+"  # edge: where the next batch starts
        while True:
            # redis-py's stubs allow None for each item; XRANGE never returns one.
            rows: list[Any] = (
                await self._redis.xrevrange(key, max=edge, min=floor, count=_BATCH)
                if newest_first
                else await self._redis.xrange(key, min=floor, max="+", count=_BATCH)
            ) or []
            for raw_id, fields in rows:
                body = fields.get(b"e")
                if body is not None:
                    yield raw_id.decode(), body
            if len(rows) < _BATCH:
                return
            if newest_first:
                edge = "(" + rows[-1][0].decode()
            else:
                floor = "(" + rows[-1][0].decode()

    async def head(self, client_id: str) -> StreamId:
        """The id of the client's newest retained event; with none, the millisecond before
        the server's now, so that a resume from it counts as recent (every later event is
        newer, and none could have been trimmed before it)."""
        found = await self._head(keys=[keys.client_events(client_id)])
        return streamid.parse(found)

    async def truncated_after(self, client_id: str, after: StreamId) -> bool:
        """Whether an event after ``after`` was trimmed away (by length or age), or may
        have been: the stream expires a window after its last event."""
        window_start_ms = time.time() * 1000 - self._age_ms + _CLOCK_SLACK_MS
        try:
            info = await self._redis.xinfo_stream(keys.client_events(client_id))
        except ResponseError:
            info = {}  # no stream: nothing published for a whole window, or ever
        first = info.get("first-entry")
        if not first:
            # An event after ``after`` would have kept the stream alive if it came inside
            # the window: only an id from before the window can have missed one (a phone
            # offline for days, its photo done minutes after it left).
            return after[0] < window_start_ms
        # Neither Redis line records a trim: 7's max-deleted-entry-id counts XDEL only.
        # Trims take the oldest entries, by length (the stream then stays at its cap or
        # above) or by age, so an event after ``after`` can be gone only if the stream is
        # at its cap or ``after`` is older than the age window.
        if int(info.get("length", 0)) < self._maxlen and after[0] >= window_start_ms:
            return False
        return streamid.parse(first[0]) > after
