"""Bring the keys an older release left in Redis to today's names (``keys.LAYOUT_VERSION``).

Layout 0 (before Redis Cluster support) kept each client's replay stream and once-keys
under names that no hash tag tied together. The queue's keys did not change, so waiting,
delayed, active and dead-lettered jobs carry over as they are. Each role runs
:func:`keep_upgrading` at start: the first process to take the lock renames every
``filmstrip:events:client:<id>`` to ``keys.client_events(id)`` (keeping its TTL; a stream a
newer process already started there is merged with it, in id order), drops the old bus
presence set (bus processes report again within seconds), and records the layout, so
later starts cost one GET. Once-keys name no client, so they cannot be moved: the publish
script honours them under their old name until they expire (one replay window).

A cluster never ran layout 0 whole (its publish with a once-key was CROSSSLOT there), and
a rename across slots is refused, so there the layout is only recorded.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from filmstrip import keys
from filmstrip.redis_client import RedisClient, is_cluster

log = logging.getLogger("filmstrip.redis_layout")

_LOCK_MS = 60_000
_SCAN_COUNT = 1000

# KEYS[1] a stream under its layout-0 name, KEYS[2] its new name. Renames it, or, when a
# process of this release already appended to the new name, merges both in id order into
# the new name (entries of equal id kept once) with the longer TTL. -> entries moved
_MOVE_STREAM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('XLEN', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  return n
end
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function before(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local old = redis.call('XRANGE', KEYS[1], '-', '+')
local new = redis.call('XRANGE', KEYS[2], '-', '+')
local ttl = math.max(redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[2]))
redis.call('DEL', KEYS[1], KEYS[2])
local i, j, last = 1, 1, nil
while i <= #old or j <= #new do
  local e
  if j > #new or (i <= #old and before(old[i][1], new[j][1])) then
    e = old[i]; i = i + 1
  else
    e = new[j]; j = j + 1
  end
  if last == nil or before(last, e[1]) then
    redis.call('XADD', KEYS[2], e[1], unpack(e[2]))
    last = e[1]
  end
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return n
"""


async def upgrade_layout(redis: RedisClient) -> bool:
    """Move what layout 0 left to today's names, once per Redis; True if this call did. One
    that finds another moving waits for it (or, should it die, takes over once its lock ends)."""
    while not await _current(redis):
        if await redis.set(keys.layout_lock(), b"1", nx=True, px=_LOCK_MS):
            try:
                if await _current(redis):
                    return False  # the one before us finished between our look and lock
                if not is_cluster(redis):
                    moved = await _move_streams(redis)
                    await redis.delete(keys.LEGACY_BUS_INSTANCES)
                    if moved:
                        log.warning("moved %d clients' replay streams to their new names", moved)
                await redis.set(keys.layout_version(), str(keys.LAYOUT_VERSION).encode())
            finally:
                await redis.delete(keys.layout_lock())
            return True
        await asyncio.sleep(0.1)
    return False


async def _current(redis: RedisClient) -> bool:
    raw = await redis.get(keys.layout_version())
    return raw is not None and int(raw) >= keys.LAYOUT_VERSION


async def _move_streams(redis: RedisClient) -> int:
    move = redis.register_script(_MOVE_STREAM)
    prefix = keys.LEGACY_CLIENT_EVENTS_PREFIX
    moved = 0
    async for raw in redis.scan_iter(match=prefix + "*", count=_SCAN_COUNT, _type="stream"):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        client_id = name[len(prefix) :]
        await move(keys=[name, keys.client_events(client_id)])
        moved += 1
    return moved


async def keep_upgrading(redis: RedisClient) -> None:
    """Run :func:`upgrade_layout` until it succeeds, riding out a Redis that is down (a
    role may start first); meant for a background task."""
    delay = 0.5
    while True:
        try:
            await upgrade_layout(redis)
            return
        except (RedisError, OSError) as exc:
            log.warning("could not check the redis key layout yet: %s", exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
