"""An api process's reconciler for the lock tests: runs one round that hangs at a chosen
step (so the test can SIGKILL it there), with the settings of the environment.

    python -m tests.api.reconciler_proc <hang: round|sweep> <lease_s>

Prints ``hanging`` once the round is at that step. The hang is this helper's own: the
round, its lease and its gates are the api's.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from filmstrip.blobs import open_blob_store
from filmstrip.catalog import open_catalog
from filmstrip.events import EventPublisher
from filmstrip.photos import PhotoLifecycle
from filmstrip.queue import JobQueue, QueueOptions
from filmstrip.redis_client import open_redis
from filmstrip.services.api import reconciler
from filmstrip.settings import load_settings


async def _hang(*_args: Any, **_kwargs: Any) -> int:
    print("hanging", flush=True)
    await asyncio.Event().wait()
    return 0


async def main(hang: str, lease_s: float) -> None:
    settings = load_settings()
    if hang == "round":
        reconciler.requeue_stuck = _hang  # type: ignore[assignment]
    else:
        reconciler.sweep_orphan_blobs = _hang  # type: ignore[assignment]
    redis = await open_redis(settings)
    catalog = await open_catalog(settings)
    blobs = await open_blob_store(settings)
    queue = JobQueue(redis, QueueOptions.from_settings(settings))
    photos = PhotoLifecycle(settings, catalog, queue, EventPublisher(redis), signing_secret=b"test")
    await reconciler.reconcile_once(photos, redis, blobs, lease_s=lease_s)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
