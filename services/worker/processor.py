"""The worker's job handler: wires pipeline stages to the blob store and to the photo's
lifecycle (filmstrip.photos: its catalog writes, follow-up jobs and events).

Every step is idempotent because a job may be delivered more than once: derivatives are
written under fixed keys, the catalog update is a plain overwrite, and a photo deleted
while its job ran is detected at the end and its fresh derivatives removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

import msgspec
from redis.exceptions import RedisError

from filmstrip.blobs import BlobNotFound, BlobStore
from filmstrip.blobs.local_cache import LocalBlobCache
from filmstrip.catalog import DerivativeRecord, PhotoRecord, PhotoStatus
from filmstrip.concurrency import run_blocking
from filmstrip.errors import DataError, FilmstripError, LogicError, TemporaryError
from filmstrip.logs import trace_id_var
from filmstrip.metrics import jobs as job_metrics
from filmstrip.metrics.stage_stats import StageTimingsBuffer
from filmstrip.photos import PhotoLifecycle, decode_job, owed_stages, split_stages
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.runner import run_stage
from filmstrip.protocols.events import (
    PHOTO_DEFERRED_COMPLETED,
    STAGE_COMPLETED,
    DeferredCompletedData,
    StageCompletedData,
)
from filmstrip.protocols.jobs import PhotoProcessingJob
from filmstrip.queue import Job
from filmstrip.settings import Settings

log = logging.getLogger("filmstrip.worker")


def derivative_key(photo_id: str, name: str, ext: str) -> str:
    """Where a derivative lives in the blob store."""
    return f"derivatives/{photo_id}/{name}.{ext}"


PROGRESS_EVERY_S = 1.0


class PhotoProcessor:
    """Processes one photo job end to end; ``photos`` makes its changes of state."""

    def __init__(
        self,
        settings: Settings,
        *,
        photos: PhotoLifecycle,
        blobs: BlobStore,
        timings: StageTimingsBuffer | None = None,
        originals: LocalBlobCache | None = None,
    ) -> None:
        self.settings = settings
        self.photos = photos
        # Where per-stage timings go for the dashboard; None records none (focused tests).
        self.timings = timings
        # Where an original waits for its photo's follow-up job; None fetches it again.
        self.originals = originals
        self.blobs = blobs
        self.options = settings.pipeline
        # When each delivery in flight last stored its progress (or started).
        self._progress_at: dict[str, float] = {}

    async def handle(self, job: Job) -> None:
        """Run the job's pipeline; raise a categorised error to fail or retry it."""
        spec = decode_job(job.payload)
        token = trace_id_var.set(spec.context.trace_id)
        started = time.perf_counter()
        outcome = "completed"
        self._progress_at[job.entry_id] = time.monotonic()
        try:
            await self._process(job, spec)
        except FilmstripError as exc:
            outcome = _count_failure(job, exc)
            raise
        except (ConnectionError, TimeoutError, OSError, RedisError) as exc:
            error = TemporaryError(f"{type(exc).__name__}: {exc}", code="io_error")
            outcome = _count_failure(job, error)
            raise error from exc
        finally:
            job_metrics.JOB_SECONDS.labels(spec.pipeline.phase, outcome).observe(
                time.perf_counter() - started
            )
            trace_id_var.reset(token)
            self._progress_at.pop(job.entry_id, None)

    async def _process(self, job: Job, spec: PhotoProcessingJob) -> None:
        if spec.pipeline.phase == "deferred":
            await self._process_deferred(job, spec)
            return
        photo_id = spec.photo_id
        started = time.perf_counter()
        photo = await self.photos.start(spec, job.attempt)
        if photo is None:
            log.info("photo was deleted; job discarded", extra={"photo_id": photo_id})
            return
        stages, deferred = split_stages(self.settings, spec)
        if photo.status == PhotoStatus.COMPLETED:
            # A redelivery after the catalog update: make sure the follow-up job exists and
            # the client heard about it (the once-key keeps this from announcing it twice).
            log.info("photo already processed; duplicate delivery", extra={"photo_id": photo_id})
            known = photo.processing_metadata or {}
            follow_up = deferred if owed_stages(deferred, known) else []
            await self.photos.ready(
                spec,
                job,
                follow_up=follow_up,
                metadata=known,
                derivatives=photo.derivatives,
                taken_at=photo.taken_at,
                ms=0.0,
            )
            return
        data = await self._original(spec)
        if data is None:
            return
        ctx = StageContext(data, self.options)
        timings = await self._run_stages(job, spec, ctx, stages, progress_to=90)

        records = await self._store_derivatives(photo_id, ctx)
        # Timings go to the stage events and logs only: the catalog gets the same values
        # however often a photo is processed.
        metadata: dict[str, Any] = dict(ctx.metadata)
        exif = metadata.get("exif") or {}
        taken_at = exif.get("taken_at") if isinstance(exif, dict) else None
        stored = await self.photos.catalog.complete_photo(
            photo_id,
            metadata=metadata,
            derivatives=records,
            taken_at=taken_at,
            keep_metadata=deferred,
            keep_derivatives=_outputs(deferred),
            owed=deferred,
        )
        if not stored:
            # Deleted while we worked: leave nothing behind.
            await self.blobs.delete_prefix(f"derivatives/{photo_id}/")
            log.info(
                "photo deleted during processing; results discarded", extra={"photo_id": photo_id}
            )
            return
        if deferred and self.originals is not None:
            await self.originals.put(spec.storage.key, data)
        self._record_timings(timings)
        total_ms = round((time.perf_counter() - started) * 1000, 1)
        await self.photos.ready(
            spec,
            job,
            follow_up=deferred,
            metadata=metadata,
            derivatives=records,
            taken_at=taken_at,
            ms=total_ms,
        )
        log.info(
            "photo completed", extra={"photo_id": photo_id, "ms": total_ms, "stages_ms": timings}
        )

    async def _original(self, spec: PhotoProcessingJob) -> bytes | None:
        """The original's bytes; None if the photo was deleted meanwhile."""
        try:
            return await self.blobs.get_bytes(spec.storage.key)
        except BlobNotFound:
            if await self.photos.catalog.get_photo(spec.photo_id) is None:
                return None
            raise DataError(
                "the original file is missing from the blob store", code="original_missing"
            ) from None

    async def _kept_original(self, spec: PhotoProcessingJob, photo: PhotoRecord) -> bytes | None:
        """The original the upload job left in the local cache, if it is intact."""
        if self.originals is None:
            return None
        data = await self.originals.take(spec.storage.key)
        if data is None:
            return None
        if len(data) != photo.bytes or (
            photo.sha256 is not None and await run_blocking(_sha256_hex, data) != photo.sha256
        ):
            log.warning("cached original does not match the catalog; fetching it")
            return None
        return data

    async def _run_stages(
        self,
        job: Job,
        spec: PhotoProcessingJob,
        ctx: StageContext,
        stages: list[str],
        *,
        progress_to: int,
    ) -> dict[str, float]:
        """Run ``stages`` on ``ctx`` in order, with a stage event after each; their ms."""
        timings: dict[str, float] = {}
        for index, name in enumerate(stages, start=1):
            t0 = time.perf_counter()
            summary = await run_stage(get_stage(name), ctx, timeout_s=self.options.stage_timeout_s)
            timings[name] = round((time.perf_counter() - t0) * 1000, 1)
            job_metrics.STAGE_SECONDS.labels(name).observe(timings[name] / 1000)
            progress = int(progress_to * index / len(stages))
            await self._progress(job, progress)
            # Held up to HOLD_S: a fast photo's stage events go out with its completion.
            data = StageCompletedData(
                photo_id=spec.photo_id,
                stage=name,
                progress=progress,
                ms=timings[name],
                result=summary,
            )
            await self.photos.notify(spec, STAGE_COMPLETED, msgspec.to_builtins(data), hold=True)
            # DEBUG: the job's INFO line carries every stage's time.
            log.debug(
                "stage done", extra={"photo_id": spec.photo_id, "stage": name, "ms": timings[name]}
            )
        return timings

    async def _process_deferred(self, job: Job, spec: PhotoProcessingJob) -> None:
        """The follow-up job: run the deferred stages on a ready photo and merge the results.

        The photo stays ``completed`` throughout; a failure here costs only the optional
        copies, never the photo.
        """
        photo_id = spec.photo_id
        photo = await self.photos.catalog.get_photo(photo_id)
        if photo is None or photo.status != PhotoStatus.COMPLETED:
            log.info(
                "follow-up job for a photo that is not ready; discarded",
                extra={"photo_id": photo_id, "status": photo.status if photo else None},
            )
            if self.originals is not None:
                # A deleted photo's bytes must not wait out the cache's age limit.
                await self.originals.discard(spec.storage.key)
            return
        # No validation stage: the ready job ran it on these bytes, and the context still
        # checks format and limits from the header before a deferred stage decodes
        # (with fail_on). Its preview-scale decode would cost a fifth of the follow-up.
        stages = [s for s in spec.pipeline.stages if s != "validation"]
        data = await self._kept_original(spec, photo) or await self._original(spec)
        if data is None:
            return
        ctx = StageContext(data, self.options)
        timings = await self._run_stages(job, spec, ctx, stages, progress_to=100)
        owned = _outputs(stages)
        records = await self._store_derivatives(photo_id, ctx)
        results = {name: ctx.metadata[name] for name in stages if name in ctx.metadata}
        merged = await self.photos.catalog.add_deferred_results(
            photo_id, metadata=results, derivatives=records, replaces=owned
        )
        if merged is None:
            # Deleted (or reprocessing) while we worked: drop what this job wrote.
            for record in records:
                await self.blobs.delete(record.key)
            log.info("photo gone during its follow-up job", extra={"photo_id": photo_id})
            return
        # A rerun that now keeps nothing must not leave an older copy behind.
        for stale in owned - {r.name for r in records}:
            for old in photo.derivatives:
                if old.name == stale:
                    await self.blobs.delete(old.key)
        self._record_timings(timings)
        await self.photos.notify(
            spec,
            PHOTO_DEFERRED_COMPLETED,
            msgspec.to_builtins(
                DeferredCompletedData(
                    photo_id=photo_id,
                    stages=stages,
                    derivatives=self.photos.derivative_links(photo_id, merged),
                    results=results,
                )
            ),
        )
        log.info(
            "follow-up done",
            extra={"photo_id": photo_id, "ms": sum(timings.values()), "stages_ms": timings},
        )

    async def _store_derivatives(self, photo_id: str, ctx: StageContext) -> list[DerivativeRecord]:
        """Put every derivative in ``ctx``; their catalog records."""
        records = [
            DerivativeRecord(
                name=name,
                key=derivative_key(photo_id, name, d.ext),
                content_type=d.content_type,
                width=d.width,
                height=d.height,
                bytes=len(d.data),
            )
            for name, d in ctx.derivatives.items()
        ]
        # Side by side: against a remote store each put is a round trip the photo waits for.
        # The keys are fixed per photo, so a retry after a partial failure rewrites them.
        outcomes = await asyncio.gather(
            *(
                # Not durable: a derivative can be made again from the original (which
                # is), and a process crash cannot lose it; only a power cut or kernel crash
                # can leave one short, and the api then has it made again on first read.
                # The fsyncs cost the workers ~2 ms of CPU per photo (bench/soak.py).
                self.blobs.put_bytes(r.key, d.data, content_type=r.content_type, durable=False)
                for r, d in zip(records, ctx.derivatives.values(), strict=True)
            ),
            return_exceptions=True,
        )
        # All settle before any error goes on, so no put outlives the job's attempt.
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return records

    async def on_failed(self, job: Job, error: FilmstripError) -> None:
        """A job failed for good: record it on the photo and tell the client."""
        try:
            spec = decode_job(job.payload)
        except LogicError:
            log.error("dead-lettered a malformed job %s: %s", job.id, error)
            return
        job_metrics.DEAD_LETTERS.labels(str(error.category)).inc()
        token = trace_id_var.set(spec.context.trace_id)
        what = {"code": error.code, "category": str(error.category), "message": error.message}
        try:
            if spec.pipeline.phase == "deferred":
                # The photo is ready and stays so: only its optional copies are missing.
                log.warning(
                    "follow-up job failed; the photo keeps its ready derivatives",
                    extra={"photo_id": spec.photo_id, "code": error.code, "error": error.message},
                )
                await self._drop_unrecorded_derivatives(spec.photo_id)
                await self.photos.follow_up_failed(spec, **what)
                return
            log.warning(
                "photo failed",
                extra={"photo_id": spec.photo_id, "code": error.code,
                       "category": str(error.category), "error": error.message},
            )  # fmt: skip
            await self.photos.fail(spec, **what)
        finally:
            trace_id_var.reset(token)

    async def _drop_unrecorded_derivatives(self, photo_id: str) -> None:
        """Delete the photo's derivative blobs the catalog does not list (a copy a failed
        follow-up job stored before it could record it)."""
        photo = await self.photos.catalog.get_photo(photo_id)
        if photo is None:
            return
        recorded = {d.key for d in photo.derivatives}
        stray = [b.key async for b in self.blobs.list(f"derivatives/{photo_id}/")]
        for key in stray:
            if key not in recorded:
                await self.blobs.delete(key)

    async def _progress(self, job: Job, percent: int) -> None:
        # The stored figure is for the queue's job listing; clients follow every stage in
        # the events. At most one write a second per job: a typical photo's job ends (the
        # queue then stores 100) before a write would be due, so it costs no round trips.
        now = time.monotonic()
        if now - self._progress_at.get(job.entry_id, now) < PROGRESS_EVERY_S:
            return
        self._progress_at[job.entry_id] = now
        # Progress is advisory: a Redis blip must not fail a job whose work is done.
        try:
            await job.update_progress(percent)
        except (RedisError, FilmstripError) as exc:
            log.debug("progress %d%% not stored: %s", percent, exc)

    def _record_timings(self, timings: dict[str, float]) -> None:
        if self.timings is not None:
            self.timings.add(timings, now_ms=int(time.time() * 1000))


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _outputs(stages: list[str]) -> set[str]:
    """The derivative names ``stages`` may write."""
    return {name for stage in stages for name in get_stage(stage).outputs}


def _count_failure(job: Job, error: FilmstripError) -> str:
    """Count a failed delivery that the queue will retry; return its outcome label."""
    if error.category.retryable and job.attempt < job.attempts:
        job_metrics.RETRIES.labels(str(error.category)).inc()
    return str(error.category)
