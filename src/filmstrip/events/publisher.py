"""Publish events: one Lua call appends to the client's capped replay stream and PUBLISHes
(one event, or several of one client in order: a worker's events of a fast photo go out in
one call instead of one each).

The pub/sub message is ``<stream id> <json>``: the stream id is the event's id, so a client
that reconnects can resume from the last id it saw without a gap or a duplicate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from redis.exceptions import RedisError

from filmstrip import keys
from filmstrip.clock import iso_utc
from filmstrip.errors import TemporaryError
from filmstrip.protocols.events import CHANNEL_OF_TYPE, Event, EventMetadata
from filmstrip.redis_client import RedisClient, is_cluster
from filmstrip.script_wire import ScriptWire
from filmstrip.settings import Settings

# KEYS[1] client stream, KEYS[2] (optional) once-only key, both on the client's slot;
# KEYS[3] (optional, never on a cluster) the once-key as older releases named it, honoured
# until those expire (one replay window after an upgrade; see filmstrip.redis_layout).
# ARGV: channel, json body, maxlen, min id (ms) for age trimming, replay ttl (ms), then
# the channel and body of each further event, in order. With KEYS[2], the last event,
# published again (a retried job), is a no-op that returns its first id: exactly once.
# Returns the last event's id.
PUBLISH_SCRIPT = """
local n = 1 + (#ARGV - 5) / 2
local seen = false
if KEYS[2] then
  seen = redis.call('GET', KEYS[2])
  if not seen and KEYS[3] then seen = redis.call('GET', KEYS[3]) end
  if seen and n == 1 then return seen end
end
local id
for i = 1, seen and n - 1 or n do
  local channel, body = ARGV[1], ARGV[2]
  if i > 1 then
    channel, body = ARGV[2 * i + 2], ARGV[2 * i + 3]
  end
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', body)
  redis.call('PUBLISH', channel, id .. ' ' .. body)
end
if KEYS[2] and not seen then
  redis.call('SET', KEYS[2], id, 'PX', ARGV[5])
end
if ARGV[4] ~= '0' then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return seen or id
"""

_encoder = msgspec.json.Encoder()


class EventPublisher:
    """Publishes events for api and worker; the bus is the only reader."""

    def __init__(
        self, redis: RedisClient, *, replay_maxlen: int = 1000, replay_age_s: int = 86_400
    ) -> None:
        self._redis = redis
        self._script = ScriptWire(redis, redis.register_script(PUBLISH_SCRIPT), reconnect=True)
        # A cluster never held older releases' once-keys: their publish was CROSSSLOT there.
        self._legacy_once = not is_cluster(redis)
        self._maxlen = replay_maxlen
        self._age_ms = replay_age_s * 1000

    @classmethod
    def from_settings(cls, redis: RedisClient, settings: Settings) -> EventPublisher:
        """A publisher whose replay streams follow ``bus_replay_maxlen``/``bus_replay_age_s``
        (what the bus promises to replay after a reconnect)."""
        return cls(
            redis, replay_maxlen=settings.bus.replay_maxlen, replay_age_s=settings.bus.replay_age_s
        )

    def event(
        self,
        type_: str,
        *,
        photo_id: str,
        client_id: str,
        trace_id: str,
        session_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """An event of ``client_id``'s photo, to publish (its id is its stream id)."""
        return Event(
            id="",
            type=type_,
            channel=CHANNEL_OF_TYPE[type_],  # type: ignore[arg-type]
            photo_id=photo_id,
            data={"photo_id": photo_id, **(data or {})},
            metadata=EventMetadata(client_id=client_id, session_id=session_id, trace_id=trace_id),
            timestamp=iso_utc(time.time()),
        )

    async def publish(
        self,
        type_: str,
        *,
        photo_id: str,
        client_id: str,
        trace_id: str,
        session_id: str | None = None,
        data: dict[str, Any] | None = None,
        once_key: str | None = None,
    ) -> str:
        """Publish one event; return its id. With ``once_key``, an event already published
        under that key is not published again. Raises TemporaryError if Redis is unreachable."""
        event = self.event(
            type_,
            photo_id=photo_id,
            client_id=client_id,
            trace_id=trace_id,
            session_id=session_id,
            data=data,
        )
        return await self.publish_events([event], once_key=once_key)

    async def publish_events(self, events: Sequence[Event], *, once_key: str | None = None) -> str:
        """Publish events of one client in order, in one call; return the last one's id.
        ``once_key`` is the last event's (see :meth:`publish`)."""
        first, *rest = events
        min_id = str(int(time.time() * 1000) - self._age_ms) if self._age_ms else "0"
        args: list[Any] = [
            first.channel,
            _encoder.encode(first),
            self._maxlen,
            min_id,
            self._age_ms or 86_400_000,
        ]
        for event in rest:
            args += [event.channel, _encoder.encode(event)]
        try:
            stream_id = await self._script.call(
                self._keys(first.metadata.client_id, once_key), args
            )
        except RedisError as exc:
            types = ", ".join(e.type for e in events)
            raise TemporaryError(
                f"could not publish {types}: {exc}", code="redis_unavailable"
            ) from exc
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)

    def _keys(self, client_id: str, once_key: str | None) -> list[str]:
        if once_key is None:
            return [keys.client_events(client_id)]
        once = [keys.client_events(client_id), keys.event_once(client_id, once_key)]
        return [*once, keys.legacy_event_once(once_key)] if self._legacy_once else once


async def forget_once(redis: RedisClient, client_id: str, once_key: str) -> None:
    """Allow an event of ``client_id`` published under ``once_key`` to be published again
    (a photo that is processed anew after a retry announces its new outcome)."""
    try:
        # Two commands, not one DEL: the older release's name is on another slot.
        async with redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.event_once(client_id, once_key))
            pipe.delete(keys.legacy_event_once(once_key))
            await pipe.execute()
    except RedisError as exc:
        raise TemporaryError(
            f"could not reset {once_key}: {exc}", code="redis_unavailable"
        ) from exc


# KEYS[1] the once-key, KEYS[2] its parked copy (one slot). RENAME, unlike a SET back, is
# taken by a Redis full to its maxmemory: what refused the queue step must not refuse this.
_PARK_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
"""
_RESTORE_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('DEL', KEYS[2])
  else
    redis.call('RENAME', KEYS[2], KEYS[1])
  end
end
"""


async def park_once(redis: RedisClient, client_id: str, once_key: str) -> None:
    """:func:`forget_once`, keeping the key aside for :func:`restore_once`: a retry reopens
    a photo's outcome before its queue step, and puts the old one back if that step fails."""
    await _once_script(redis, _PARK_SCRIPT, client_id, once_key)
    try:
        await redis.delete(keys.legacy_event_once(once_key))
    except RedisError as exc:
        raise TemporaryError(
            f"could not reset {once_key}: {exc}", code="redis_unavailable"
        ) from exc


async def restore_once(redis: RedisClient, client_id: str, once_key: str) -> None:
    """Put back the once-key :func:`park_once` set aside, unless one was set since."""
    await _once_script(redis, _RESTORE_SCRIPT, client_id, once_key)


async def _once_script(redis: RedisClient, script: str, client_id: str, once_key: str) -> None:
    once = keys.event_once(client_id, once_key)
    parked = keys.event_once(client_id, f"{once_key}:parked")
    try:
        await redis.eval(script, 2, once, parked)
    except RedisError as exc:
        raise TemporaryError(f"could not move {once_key}: {exc}", code="redis_unavailable") from exc


def new_trace_id() -> str:
    """A W3C-compatible 32-hex trace id."""
    return uuid.uuid4().hex
