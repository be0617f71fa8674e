"""Reading a client's capped event stream to replay what a socket missed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import ResponseError

from filmstrip import keys
from filmstrip.redis_client import RedisClient
from services.bus import streamid
from services.bus.streamid import StreamId

_BATCH = 200


class ReplayReader:
    """XRANGE over ``keys.client_events(client_id)`` in batches."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def entries_after(
        self, client_id: str, after: StreamId
    ) -> AsyncIterator[tuple[str, bytes]]:
        """``(stream id, event json)`` of every retained event after ``after``, in order."""
        key = keys.client_events(client_id)
        start = "(" + streamid.format_id(after)
        while True:
            # redis-py's stubs allow None for each item; XRANGE never returns one.
            rows: list[Any] = await self._redis.xrange(key, min=start, max="+", count=_BATCH) or []
            for raw_id, fields in rows:
                body = fields.get(b"e")
                if body is not None:
                    yield raw_id.decode(), body
            if len(rows) < _BATCH:
                return
            start = "(" + rows[-1][0].decode()

    async def head(self, client_id: str) -> StreamId:
        """The id of the client's newest retained event (``0-0`` if none)."""
        key = keys.client_events(client_id)
        rows: list[Any] = await self._redis.xrevrange(key, max="+", min="-", count=1) or []
        return streamid.parse(rows[0][0]) if rows else streamid.ZERO

    async def truncated_after(self, client_id: str, after: StreamId) -> bool:
        """Whether an event after ``after`` was trimmed away (by length or age).

        Trimming removes the oldest entries, so some were lost after ``after`` when the
        stream has dropped entries and its oldest kept one is newer than ``after``. (If
        ``after`` was exactly the last entry trimmed, this errs towards True.)
        """
        try:
            info = await self._redis.xinfo_stream(keys.client_events(client_id))
        except ResponseError:
            return False  # no stream: nothing was ever kept, or all of it expired
        first = info.get("first-entry")
        if not first:
            return False
        # Redis 7 counts every entry ever added: equal to the length means none was trimmed.
        # Redis 6.2 lacks the count; the oldest kept entry is then the only evidence.
        added = info.get("entries-added")
        if added is not None and int(added) <= int(info.get("length", 0)):
            return False
        return streamid.parse(first[0]) > after
