"""Run the worker role."""

from __future__ import annotations

import asyncio
import logging

from filmstrip.auth.signing import load_signing_secret
from filmstrip.blobs import open_blob_store
from filmstrip.blobs.local_cache import LocalBlobCache
from filmstrip.catalog import open_catalog
from filmstrip.concurrency import configure_pool, shutdown_pool
from filmstrip.events import EventPublisher
from filmstrip.metrics.exposition import start_metrics_server
from filmstrip.metrics.queue import refresh_depths
from filmstrip.metrics.stage_stats import StageTimingsBuffer
from filmstrip.photos import PhotoLifecycle
from filmstrip.pipeline.vips import configure_vips
from filmstrip.queue import Consumer, JobQueue, QueueOptions
from filmstrip.redis_client import open_redis
from filmstrip.redis_layout import keep_upgrading
from filmstrip.services.worker.processor import PhotoProcessor
from filmstrip.settings import Settings
from filmstrip.tasks import cancel_and_wait

log = logging.getLogger("filmstrip.worker")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Consume photo jobs until ``stop`` is set, then hand back what is in flight."""
    configure_vips(settings.pipeline)
    # Its threads start libvips' (in the stages): all of them run as batch work.
    configure_pool(settings.worker.pipeline_threads, slice_ms=settings.worker.cpu_slice_ms)
    # No reply timeout: the consumer's XREADGROUP blocks longer on purpose.
    redis = await open_redis(settings)
    catalog = await open_catalog(settings)
    blobs = await open_blob_store(settings)
    queue = JobQueue(redis, QueueOptions.from_settings(settings))
    timings = StageTimingsBuffer(redis)
    flushing = asyncio.create_task(timings.run())
    upgrading = asyncio.create_task(keep_upgrading(redis))
    processor = PhotoProcessor(
        settings,
        photos=PhotoLifecycle(
            settings,
            catalog,
            queue,
            EventPublisher.from_settings(redis, settings),
            # The api's key (kept in the catalog): the completion events carry signed URLs.
            signing_secret=await load_signing_secret(
                settings.api.signing_secret, catalog, settings.files.data_dir
            ),
        ),
        blobs=blobs,
        timings=timings,
        originals=LocalBlobCache.for_originals(settings),
    )
    metrics = await start_metrics_server(
        settings.worker.metrics_host,
        settings.worker.metrics_port,
        refresh=lambda: refresh_depths(queue),
    )
    consumer = Consumer(
        queue,
        processor.handle,
        on_failed=processor.on_failed,
        concurrency=settings.queue.concurrency,
    )
    run = asyncio.create_task(consumer.run())
    log.info("worker consuming", extra={"concurrency": settings.queue.concurrency})
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
        await consumer.stop()
        await run
    finally:
        await cancel_and_wait(stopper, flushing, upgrading)
        await timings.flush()
        if metrics is not None:
            await metrics.cleanup()
        shutdown_pool()
        await blobs.close()
        await catalog.close()
        await redis.aclose()
