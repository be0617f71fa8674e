"""One reconciler round at a time across api processes, through a lease a dead process
lets go of within its short lifetime, and an orphan sweep recorded only once finished."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.services.api.reconciler import reconcile_once
from tests.api.conftest import Api, api_settings, running_api

ROOT = Path(__file__).resolve().parents[2]
# Far longer than any test: a process that died mid-round must not hold the others off
# for the interval (what a lock with the interval's TTL did), only for the lease.
INTERVAL = "3600"


@asynccontextmanager
async def _apis(redis_server: RedisServer, tmp_path: Path, n: int) -> AsyncIterator[list[Api]]:
    settings = api_settings(
        tmp_path, redis_server.url, reconcile_interval_s=INTERVAL, orphan_grace_s="0"
    )
    async with running_api(settings, "alice") as one:
        if n == 1:
            yield [one]
            return
        async with running_api(settings, "bob") as two:
            yield [one, two]


async def _round(api: Api) -> bool:
    s = api.state
    return await reconcile_once(s.photos, s.redis, s.blobs, lease_s=0.6)


@asynccontextmanager
async def _hanging_round(api: Api, at: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another api process whose reconciler round hangs ``at`` a step (lease 0.6 s)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "FILMSTRIP_DATA_DIR": api.settings.files.data_dir,
        "FILMSTRIP_REDIS_URL": api.settings.redis.url,
        "FILMSTRIP_DATABASE_URL": api.settings.effective_database_url,
        "FILMSTRIP_BLOB_URL": api.settings.effective_blob_url,
        "FILMSTRIP_RECONCILE_INTERVAL_S": INTERVAL,
        "FILMSTRIP_ORPHAN_GRACE_S": "0",
        "FILMSTRIP_LOG_JSON": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.api.reconciler_proc", at, "0.6",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line == b"hanging\n", line
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _takes_over(api: Api, limit_s: float = 10.0) -> float:
    """Seconds until this process runs a round."""
    start = time.monotonic()
    while not await _round(api):
        assert time.monotonic() - start < limit_s, "no round ran"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_two_reconcilers_at_once_run_one_round(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with _apis(redis_server, tmp_path, 2) as (one, two):
        assert sorted(await asyncio.gather(_round(one), _round(two))) == [False, True]
        # One round per interval between them: neither runs another one now.
        assert await asyncio.gather(_round(one), _round(two)) == [False, False]


async def test_a_reconciler_killed_mid_round_is_taken_over_within_its_lease(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with _apis(redis_server, tmp_path, 1) as (api,), _hanging_round(api, "round") as proc:
        # While it lives it renews its lease: several lifetimes pass and nobody joins in.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert not await _round(api)
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        # Its lease lapses (0.6 s), not the interval (an hour).
        assert await _takes_over(api) < 3.0


async def test_a_sweep_killed_halfway_runs_again_at_the_next_round(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with _apis(redis_server, tmp_path, 1) as (api,):
        orphan = f"originals/{uuid.uuid4()}"
        await api.state.blobs.put_bytes(orphan, b"x", content_type="image/jpeg")
        async with _hanging_round(api, "sweep") as proc:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        await _takes_over(api)
        assert await api.state.blobs.stat(orphan) is None
        # Finished, the sweep is recorded: the next round (once one is due) skips it.
        later = f"originals/{uuid.uuid4()}"
        await api.state.blobs.put_bytes(later, b"x", content_type="image/jpeg")
        await redis.delete(keys.reconciler_round_gate())
        assert await _round(api)
        assert await api.state.blobs.stat(later) is not None
