"""The resume's gap check on both Redis lines the project supports, each on its own server
(the suite's other tests run on whichever redis-server is first on PATH). Neither keeps a
record of a trim (7's ``max-deleted-entry-id`` counts XDEL only), so the check infers a
gap from the cap and the age window the publishers trim by."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from filmstrip import keys
from filmstrip.services.bus import streamid
from filmstrip.services.bus.replay import ReplayReader
from tests.support.redis_versions import VersionedServer, versioned_redis, versioned_server

__all__ = ["versioned_redis", "versioned_server"]  # the fixtures this module runs on


@pytest.fixture
def server(versioned_server: tuple[int, VersionedServer]) -> tuple[int, VersionedServer]:
    return versioned_server


@pytest.fixture
def redis(versioned_redis: aioredis.Redis) -> aioredis.Redis:
    return versioned_redis


async def _events(redis: aioredis.Redis, n: int, *, first_ms: int | None = None) -> list[str]:
    stream = keys.client_events("c1")
    ids = []
    for i in range(n):
        ms = "*" if first_ms is None else f"{first_ms + i}-0"
        ids.append((await redis.xadd(stream, {"e": b"{}"}, id=ms)).decode())
    return ids


def _before(event_id: str) -> streamid.StreamId:
    return (streamid.parse(event_id)[0] - 1, 0)


async def test_nothing_trimmed_is_no_gap(
    server: tuple[int, VersionedServer], redis: aioredis.Redis
) -> None:
    sent = await _events(redis, 3)
    reader = ReplayReader(redis, maxlen=5)
    assert not await reader.truncated_after("c1", _before(sent[0]))
    assert not await reader.truncated_after("c2", _before(sent[0]))  # no stream at all


async def test_a_trim_to_the_cap_is_a_gap_before_what_it_removed(
    server: tuple[int, VersionedServer], redis: aioredis.Redis
) -> None:
    sent = await _events(redis, 8)
    assert await redis.xtrim(keys.client_events("c1"), maxlen=5, approximate=False) == 3
    reader = ReplayReader(redis, maxlen=5)
    assert await reader.truncated_after("c1", streamid.parse(sent[1]))  # sent[2] is gone
    # From the oldest event kept, everything after it is kept too.
    assert not await reader.truncated_after("c1", streamid.parse(sent[3]))
    assert not await reader.truncated_after("c1", streamid.parse(sent[5]))


async def test_events_older_than_the_age_window(
    server: tuple[int, VersionedServer], redis: aioredis.Redis
) -> None:
    """Trimmed by age (under the cap): both lines see the gap before the first kept event."""
    old_ms = int(time.time() * 1000) - 3_600_000  # an hour ago; the window is 10 s
    sent = await _events(redis, 4, first_ms=old_ms)
    assert await redis.xtrim(keys.client_events("c1"), minid=sent[2], approximate=False) == 2
    reader = ReplayReader(redis, maxlen=1000, age_s=10)
    assert await reader.truncated_after("c1", streamid.parse(sent[0]))


async def test_a_trim_inside_the_window_under_the_cap(
    server: tuple[int, VersionedServer], redis: aioredis.Redis
) -> None:
    """Publishers trim only by the cap and the age window, so a stream under its cap
    lost nothing inside the window; a trim by anything else goes unseen on either line."""
    sent = await _events(redis, 4)
    assert await redis.xtrim(keys.client_events("c1"), minid=sent[2], approximate=False) == 2
    reader = ReplayReader(redis, maxlen=1000, age_s=86_400)
    assert not await reader.truncated_after("c1", streamid.parse(sent[0]))
    assert not await reader.truncated_after("c1", streamid.parse(sent[1]))


async def test_a_stream_gone_with_its_window(
    server: tuple[int, VersionedServer], redis: aioredis.Redis
) -> None:
    """The stream expires a window after its last event. A resume from before the window
    may have missed events that went with it (a phone offline for two days, its photo
    done a minute after it left); one from inside the window cannot have."""
    now_ms = int(time.time() * 1000)
    reader = ReplayReader(redis, maxlen=1000, age_s=3600)
    assert await reader.truncated_after("c1", (now_ms - 2 * 3_600_000, 0))
    assert await reader.truncated_after("c1", (0, 0))  # "0": whatever was ever kept
    assert not await reader.truncated_after("c1", (now_ms - 5_000, 0))
