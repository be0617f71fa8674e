"""The tus sweeper's timer, on the local store of partial uploads: it removes expired uploads
and what a crash left half made or half deleted, and a failed sweep does not end it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from filmstrip.services.api.tus.local import LocalTusStore
from filmstrip.services.api.tus.sweeper import run_tus_sweeper
from filmstrip.tasks import cancel_and_wait


async def _until(condition: object, limit_s: float = 5.0) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            if condition():  # type: ignore[operator]
                return
            await asyncio.sleep(0.02)


async def test_the_timer_sweeps_expired_uploads_and_crash_leftovers_and_survives_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "tus"
    store = LocalTusStore(root)
    await store.open()
    expired = await store.create(client_id="c", length=10, metadata={}, ttl_s=0.01)
    live = await store.create(client_id="c", length=10, metadata={}, ttl_s=3600)
    # A crash mid-creation and mid-deletion, two hours ago, and one that may still be running.
    old = time.time() - 7200
    for name in (f".new-{uuid.uuid4().hex}", f".del-{uuid.uuid4().hex}-0000"):
        (root / name).mkdir()
        (root / name / "data").write_bytes(b"x" * 100)
        os.utime(root / name, (old, old))
    recent = root / f".new-{uuid.uuid4().hex}"
    recent.mkdir()
    # The open-upload mark of an upload whose folder a crash took without it.
    marks = root / ".clients" / hashlib.sha256(b"c").hexdigest()[:32]
    gone_mark = marks / uuid.uuid4().hex
    gone_mark.touch()
    # The store's folder is a file for a while (a mount not there yet): sweeps fail.
    root.rename(tmp_path / "aside")
    root.write_bytes(b"")
    task = asyncio.create_task(run_tus_sweeper(store, 0.05))
    try:
        with caplog.at_level(logging.WARNING, "filmstrip.api.tus"):
            await _until(lambda: any("sweep failed" in r.getMessage() for r in caplog.records))
        root.unlink()
        (tmp_path / "aside").rename(root)
        await _until(lambda: not (root / expired.id).exists() and not gone_mark.exists())
        assert not task.done()
    finally:
        await cancel_and_wait(task)
    assert sorted(p.name for p in root.iterdir()) == sorted([".clients", live.id, recent.name])
    assert sorted(p.name for p in marks.iterdir()) == sorted(["lock", live.id])
    assert await store.get(live.id) is not None
