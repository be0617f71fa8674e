"""The reconciler: repairs what a crash between blob store, catalog and queue can leave.

- a blob with no photo row (the api died between writing the blob and the row, or a
  delete was interrupted) is removed once it is older than a grace period;
- a photo that has sat ``queued`` or ``processing`` with no job in the queue (Redis lost
  data, or a job was removed by hand) gets its job again (dedupe by id makes this safe);
- a photo that has sat ``queued`` or ``processing`` while its job was dead-lettered (the
  worker's failure hook never ran: it died, or the catalog refused the write) is marked
  failed with the job's error, and its client told;
- a completed photo whose deferred stages (optimization) never reported and whose
  follow-up job is gone (Redis lost the last second of writes) gets its follow-up again.
- a photo marked failed whose failure event never went out (the worker's failure hook
  marks the row, then announces: the worker died in between, or Redis stayed down through
  its retries) is announced, under the once-key, while the event is within the replay
  window.

One api process at a time runs a round, holding a lease in Redis (filmstrip/lease.py) that
a process which dies mid-round stops renewing; after a finished round the others skip
theirs for most of an interval. The orphan sweep, which lists the whole store, is recorded
as done only once it finished.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from filmstrip import keys
from filmstrip.blobs import BlobStore
from filmstrip.blobs.validation import is_valid_key
from filmstrip.catalog import Catalog, PhotoStatus
from filmstrip.errors import FilmstripError
from filmstrip.lease import Lease, LeaseLost
from filmstrip.photos import PhotoLifecycle, completion_once_key, ready_job
from filmstrip.protocols.jobs import deferred_job_id_for
from filmstrip.queue import JobState
from filmstrip.redis_client import RedisClient

log = logging.getLogger("filmstrip.api.reconciler")

_BLOB_PREFIXES = ("originals/", "derivatives/")


def _photo_id_of(key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) >= 2 and parts[0] + "/" in _BLOB_PREFIXES else None


# Photos whose blobs one sweep holds at a time: the listing is checked against the catalog
# as it streams, so a sweep of a million photos needs no more memory than of a thousand.
SWEEP_BATCH = 1000


async def sweep_orphan_blobs(
    catalog: Catalog, blobs: BlobStore, *, grace_s: float, batch: int = SWEEP_BATCH
) -> int:
    """Delete blobs older than ``grace_s`` whose photo has no row; return how many."""
    # By the catalog's clock, the one all hosts share: a sweeping host whose clock runs
    # ahead must not take a blob still being recorded for one past its grace.
    cutoff = await catalog.now_s() - grace_s
    pending: dict[str, list[str]] = {}
    removed = 0

    async def settle() -> None:
        nonlocal removed
        present = await catalog.photo_ids_present(list(pending))
        for photo_id, blob_keys in pending.items():
            if photo_id in present:
                continue
            for key in blob_keys:
                if not is_valid_key(key):
                    # Put there by another tool or by hand: no store call can name it, and
                    # it must not stop the sweep of every other orphan, this round or later.
                    log.warning("orphan blob %r has a key the blob store refuses; left", key)
                    continue
                await blobs.delete(key)
                removed += 1
        pending.clear()

    for prefix in _BLOB_PREFIXES:
        async for info in blobs.list(prefix):
            photo_id = _photo_id_of(info.key)
            if not photo_id or info.modified >= cutoff:
                continue
            if photo_id not in pending and len(pending) >= batch:
                # A photo split across two batches is checked in each: still correct.
                await settle()
            pending.setdefault(photo_id, []).append(info.key)
    if pending:
        await settle()
    if removed:
        log.info("swept %d orphan blob(s)", removed)
    return removed


async def orphan_sweep_due(redis: RedisClient) -> bool:
    """True unless an orphan sweep finished within the sweep interval (call holding the
    round's lease, so no other process sweeps meanwhile)."""
    return not await redis.exists(keys.orphan_sweep_gate())


async def orphan_sweep_done(redis: RedisClient, interval_s: float) -> None:
    """Record a finished sweep: the next is due in ``interval_s``. Only once it finished,
    so a sweep that died halfway runs again at the next round, not an interval later."""
    await redis.set(keys.orphan_sweep_gate(), "1", px=int(interval_s * 1000))


async def requeue_stuck(photos: PhotoLifecycle, *, older_than_s: float) -> int:
    """Give a job back to photos queued/processing for ``older_than_s`` without one, and
    mark failed those whose job was dead-lettered; return how many photos were repaired."""
    repaired = 0
    for status in (PhotoStatus.QUEUED, PhotoStatus.PROCESSING):
        for photo in await photos.catalog.photos_in_status(status, older_than_s=older_than_s):
            info = await photos.queue.get_job(photo.job_id)
            if info is None:
                await photos.requeue(photo)
                repaired += 1
                log.warning(
                    "photo had no job; re-enqueued",
                    extra={"photo_id": photo.id, "was": status, "trace_id": photo.trace_id},
                )
            elif info.state is JobState.FAILED and (error := info.error) is not None:
                # The worker's failure hook never ran (it died, or the catalog refused it).
                job = ready_job(photos.settings, photo)
                what = {"code": error.code, "category": error.category, "message": error.message}
                if not await photos.fail(job, **what):
                    continue  # deleted meanwhile
                repaired += 1
                log.warning(
                    "photo's job was dead-lettered but the photo was not marked; marked failed",
                    extra={"photo_id": photo.id, "code": error.code, "trace_id": photo.trace_id},
                )
    return repaired


# The database's and Redis's clocks may differ this much: a once-key set at the edge of the
# replay window could be gone already, and its failure would be announced twice.
_CLOCK_SLACK_S = 60.0


async def announce_lost_failures(photos: PhotoLifecycle, *, older_than_s: float) -> int:
    """Announce the failures of the photos that failed ``older_than_s`` ago or more, but
    within the replay window, whose failure event never went out; return how many."""
    # The once-key of a failure lives as long as its event is kept for replay.
    window_s = photos.settings.bus.replay_age_s - _CLOCK_SLACK_S
    if window_s <= older_than_s:
        return 0
    failed = await photos.catalog.failed_within(older_than_s=older_than_s, newer_than_s=window_s)
    if not failed:
        return 0
    async with photos.queue.redis.pipeline(transaction=False) as pipe:
        for photo in failed:
            pipe.exists(keys.event_once(photo.client_id, completion_once_key(photo.id)))
        told = await pipe.execute()
    announced = 0
    for photo, seen in zip(failed, told, strict=True):
        if seen:
            continue
        await photos.announce_failure(photo)
        announced += 1
        log.warning(
            "failed photo's event was never published; announced",
            extra={"photo_id": photo.id, "code": photo.error_code, "trace_id": photo.trace_id},
        )
    return announced


async def requeue_follow_ups(photos: PhotoLifecycle, *, older_than_s: float) -> int:
    """Give a follow-up job back to completed photos lacking deferred results without one."""
    if not photos.settings.jobs.defer_optimization:
        return 0
    requeued = 0
    for photo in await photos.catalog.awaiting_follow_up(older_than_s=older_than_s):
        if await photos.queue.get_job(deferred_job_id_for(photo.id)) is not None:
            continue
        # None owed: the pipeline no longer defers what this photo awaited.
        if stages := await photos.requeue_follow_up(photo):
            requeued += 1
            log.warning(
                "completed photo had no follow-up job; re-enqueued",
                extra={"photo_id": photo.id, "stages": stages, "trace_id": photo.trace_id},
            )
    return requeued


# A round's lease lives this long unless renewed (every third of it): the longest a
# process that died mid-round keeps the others from the next round.
ROUND_LEASE_S = 15.0


async def reconcile_once(
    photos: PhotoLifecycle, redis: RedisClient, blobs: BlobStore, *, lease_s: float = ROUND_LEASE_S
) -> bool:
    """One round, unless another process is running one or one finished within most of
    the interval; True if this process ran it."""
    settings = photos.settings
    lease = Lease(redis, keys.reconciler_lock(), ttl_s=lease_s)
    ran = False

    async def round_() -> None:
        nonlocal ran
        # Checked holding the lease: a round that finished just before, whose gate this
        # process had not seen yet, is not run again.
        if await redis.exists(keys.reconciler_round_gate()):
            return
        ran = True
        await requeue_stuck(photos, older_than_s=settings.api.stuck_after_s)
        await announce_lost_failures(photos, older_than_s=settings.api.stuck_after_s)
        await requeue_follow_ups(photos, older_than_s=settings.api.stuck_after_s)
        if await orphan_sweep_due(redis):
            await sweep_orphan_blobs(photos.catalog, blobs, grace_s=settings.api.orphan_grace_s)
            await orphan_sweep_done(redis, settings.api.orphan_sweep_interval_s)
        await redis.set(
            keys.reconciler_round_gate(), "1", px=int(settings.api.reconcile_interval_s * 900)
        )

    await lease.run(round_)
    return ran


async def run_reconciler(photos: PhotoLifecycle, redis: RedisClient, blobs: BlobStore) -> None:
    """Reconcile every ``reconcile_interval_s`` (until cancelled)."""
    interval = photos.settings.api.reconcile_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await reconcile_once(photos, redis, blobs)
        except (FilmstripError, RedisError, LeaseLost) as exc:
            log.warning("reconciler round failed: %s", exc)
        except Exception:
            log.exception("reconciler crashed; next round in %s s", interval)
