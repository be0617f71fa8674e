"""Each change of a photo's state: the catalog write, the job and the event that go with it."""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from redis.exceptions import RedisError

from filmstrip.catalog import Catalog, DerivativeRecord, OutboxEntry, PhotoRecord, PhotoStatus
from filmstrip.errors import Category, FilmstripError, TemporaryError
from filmstrip.events import EventPublisher, forget_once, park_once, restore_once
from filmstrip.photos import links
from filmstrip.photos.failures import UNKNOWN_CODE, error_of, photo_error
from filmstrip.photos.jobs import (
    encode_job,
    follow_up_job,
    owed_stages,
    photo_pipeline,
    ready_job,
    remake_job,
)
from filmstrip.pipeline import resolve_stages, split_deferred
from filmstrip.protocols.events import (
    PHOTO_COMPLETED,
    PHOTO_DELETED,
    PHOTO_FAILED,
    PHOTO_PROCESSING_STARTED,
    PHOTO_UPLOADED,
    CompletedData,
    DeletedData,
    Derivative,
    Event,
    StartedData,
    UploadedData,
    failure_data,
)
from filmstrip.protocols.jobs import PhotoProcessingJob
from filmstrip.queue import AddResult, Job, JobQueue, RetentionSpec
from filmstrip.settings import Settings

log = logging.getLogger("filmstrip.photos")


def _dimension(value: Any) -> int | None:
    return value if isinstance(value, int) else None


#: How long an event may wait for the next of its job to go out with it in one Redis call:
#: long enough for a typical photo's ready path (started, stages, completion in one call,
#: not two: each call costs the shared Redis ~0.1 ms), short enough that progress stays live.
HOLD_S = 0.25

#: How long the outbox entries of queued jobs may wait for the next upload's transaction to
#: delete them before one of their own does: well under the relay's age for taking an
#: entry as stranded (2 s), so no relay queues such a job a second time.
OUTBOX_FORGET_S = 0.5


#: Waits before each retry of a photo's outcome (ready or failed): it must reach the client.
ANNOUNCE_RETRY_S = (0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0)
#: Waits before each retry of a deletion's event: through a Redis blip of about a second,
#: not longer, since the ``DELETE`` answers only after it.
DELETION_RETRY_S = (0.1, 0.3, 0.6)


async def _through_blips(call: Callable[[], Awaitable[object]], waits: Sequence[float]) -> None:
    """``call()``, tried again after each of ``waits`` while it fails with a FilmstripError
    (a Redis blip); the last failure is raised."""
    for wait in waits:
        try:
            await call()
            return
        except FilmstripError:
            await asyncio.sleep(wait)
    await call()


def deletion_once_key(photo_id: str) -> str:
    """The once-key of a photo's deletion: a retry after a lost reply does not repeat it."""
    return f"{photo_id}:deleted"


def completion_once_key(photo_id: str) -> str:
    """The once-key of a photo's outcome (ready or failed): its client hears it once."""
    return f"{photo_id}:done"


class PhotoLifecycle:
    """A photo's changes of state, for the roles that hold its catalog, queue and events."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        queue: JobQueue,
        events: EventPublisher,
        *,
        signing_secret: bytes,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.queue = queue
        self.events = events
        # The key of the signed URLs the completion events carry (the api's).
        self.signing_secret = signing_secret
        # Events held back per job (see notify's ``hold``) and each job's turn to send, so
        # a held batch sent late by its timer cannot overtake the job's later events (a
        # turn lives while a send holds or awaits it).
        self._held: dict[str, list[Event]] = {}
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._flushes: set[asyncio.Task[None]] = set()
        # The jobs queued from the outbox whose entries are still to be deleted: the next
        # upload's transaction does it, or forget_relayed within OUTBOX_FORGET_S.
        self._relayed: set[str] = set()
        self._forget_timer: asyncio.TimerHandle | None = None
        self._closed = False

    async def enqueue(
        self, job: PhotoProcessingJob, *, remove_on_complete: RetentionSpec | None = None
    ) -> AddResult:
        """Queue ``job`` at its priority (once: a job id that exists is left as it is)."""
        return await self.queue.add(
            job.id,
            encode_job(job),
            priority=job.pipeline.priority,
            remove_on_complete=remove_on_complete,
        )

    # --- accepted (the api) -------------------------------------------------------------------

    async def accept(self, photo: PhotoRecord, *, quota_bytes: int) -> tuple[str, bool]:
        """Record the uploaded ``photo`` and its job in one transaction (the outbox), announce
        it, then queue the job; return the job's id and whether it is queued. From the commit
        on the upload is durable: if Redis fails here, the outbox relay queues the job.
        Raises QuotaExceeded (nothing recorded) past ``quota_bytes``."""
        job = ready_job(self.settings, photo)
        entry = OutboxEntry(
            job_id=job.id,
            photo_id=photo.id,
            payload=encode_job(job).decode(),
            priority=job.pipeline.priority,
        )
        relayed = self._take_relayed()
        try:
            await self.catalog.insert_photo(photo, entry, quota_bytes=quota_bytes, relayed=relayed)
        except BaseException:
            self._keep_relayed(relayed)  # rolled back: still to delete
            raise
        # Announced before it is queued: a worker quick to take the job would otherwise
        # publish photo.processing.started ahead of photo.uploaded.
        data = UploadedData(
            photo_id=photo.id, job_id=job.id, bytes=photo.bytes, content_type=photo.content_type
        )
        await self.notify(job, PHOTO_UPLOADED, msgspec.to_builtins(data))
        try:
            await self.relay(entry)
        except (FilmstripError, RedisError) as exc:
            log.warning(
                "enqueue deferred to the outbox relay: %s", exc, extra={"photo_id": photo.id}
            )
            return job.id, False
        return job.id, True

    async def relay(self, entry: OutboxEntry) -> None:
        """Queue the job of an outbox entry; the entry is deleted soon after, riding in the
        next upload's transaction when one comes (dedupe by id makes a second relay of it,
        should this process die first, harmless)."""
        await self.queue.add(entry.job_id, entry.payload.encode(), priority=entry.priority)
        self._keep_relayed([entry.job_id])

    async def forget_relayed(self) -> None:
        """Delete, in one transaction, the outbox entries of the jobs queued since the last
        upload's transaction (on a timer, after a relay round, and before the process
        ends); those it could not delete stay for the next attempt."""
        relayed = self._take_relayed()
        if not relayed:
            return
        try:
            await self.catalog.outbox_done(*relayed)
        except BaseException:
            self._keep_relayed(relayed)
            raise

    async def close(self) -> None:
        """Finish what is in flight and delete the outbox entries still to delete (call
        before the catalog closes; what fails is left to another process's relay)."""
        self._closed = True
        if self._forget_timer is not None:
            self._forget_timer.cancel()
            self._forget_timer = None
        await asyncio.gather(*self._flushes, return_exceptions=True)
        await self._forget_quietly()

    def _take_relayed(self) -> list[str]:
        # Taken whole, so two transactions of this process never delete the same entries.
        relayed, self._relayed = list(self._relayed), set()
        return relayed

    def _keep_relayed(self, job_ids: list[str]) -> None:
        self._relayed.update(job_ids)
        if self._relayed and self._forget_timer is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._forget_timer = loop.call_later(OUTBOX_FORGET_S, self._forget_later)

    def _forget_later(self) -> None:
        self._forget_timer = None
        task = asyncio.create_task(self._forget_quietly())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _forget_quietly(self) -> None:
        try:
            await self.forget_relayed()
        except FilmstripError as exc:
            # The relay's next round tries again; a relay meanwhile only queues a job twice,
            # which dedupe by id makes a no-op.
            log.warning("outbox entries not deleted yet: %s", exc)

    # --- deleted (the api) ----------------------------------------------------------------------

    async def deleted(self, photo: PhotoRecord) -> bool:
        """Announce ``photo``, whose row is already gone, as deleted to its client: once (by
        its once-key), retried through a Redis blip; False (logged) if it could not be, and
        the deletion stands: the client's other devices then learn it over HTTP (404)."""
        data = msgspec.to_builtins(DeletedData(photo_id=photo.id))
        publish = functools.partial(
            self.events.publish,
            PHOTO_DELETED,
            photo_id=photo.id,
            client_id=photo.client_id,
            session_id=photo.session_id,
            trace_id=photo.trace_id,
            data=data,
            once_key=deletion_once_key(photo.id),
        )
        try:
            await _through_blips(publish, DELETION_RETRY_S)
        except FilmstripError as exc:
            log.warning("photo.deleted not published: %s", exc, extra={"photo_id": photo.id})
            return False
        return True

    # --- started, ready, failed (the worker; failed also the reconciler) ----------------------

    async def start(self, job: PhotoProcessingJob, attempt: int) -> PhotoRecord | None:
        """The ready job's delivery ``attempt`` begins: the photo is processing, unless it
        is completed already (a redelivery), which is left as it is. The photo as it was
        before; None if it is gone."""
        photo = await self.catalog.mark_processing(job.photo_id)
        if photo is not None and photo.status == PhotoStatus.FAILED:
            # A retry whose api saw its queue step fail (a reply lost after the job was
            # revived) put the failure's once-key back: this run's outcome must be heard.
            await forget_once(self.queue.redis, photo.client_id, completion_once_key(photo.id))
        if photo is not None and photo.status != PhotoStatus.COMPLETED:
            data = StartedData(photo_id=job.photo_id, attempt=attempt)
            await self.notify(job, PHOTO_PROCESSING_STARTED, msgspec.to_builtins(data), hold=True)
        return photo

    async def ready(
        self,
        job: PhotoProcessingJob,
        delivery: Job,
        *,
        follow_up: list[str],
        metadata: dict[str, Any],
        derivatives: list[DerivativeRecord],
        taken_at: str | None,
        ms: float,
    ) -> None:
        """The photo's results are in the catalog: announce it ready with what a client needs
        to show it; its follow-up job for the stages in ``follow_up`` is queued with
        ``delivery``'s completion, in the same Redis call (a delivery that does not complete
        queues none: the job's next delivery does, once by its id)."""
        if follow_up:
            later = follow_up_job(job, follow_up, self.settings.jobs.deferred_priority)
            delivery.then_add(later.id, encode_job(later), later.pipeline.priority)
        thumbhash = metadata.get("thumbhash")
        data = CompletedData(
            photo_id=job.photo_id,
            derivatives=self.derivative_links(job.photo_id, derivatives),
            width=_dimension(metadata.get("width")),
            height=_dimension(metadata.get("height")),
            taken_at=taken_at,
            thumbhash=thumbhash if isinstance(thumbhash, str) else None,
            ms=ms,
        )
        await self._announce(job, PHOTO_COMPLETED, msgspec.to_builtins(data))

    def derivative_links(self, photo_id: str, records: list[DerivativeRecord]) -> list[Derivative]:
        """The photo's derivatives with signed URLs, as its events carry them."""
        ttl = self.settings.api.signed_url_ttl_s
        return links.derivatives(self.signing_secret, photo_id, records, ttl)

    async def fail(
        self, job: PhotoProcessingJob, *, code: str, category: str, message: str
    ) -> bool:
        """Mark the photo failed for good and tell its client; False if it was deleted."""
        error = photo_error(code=code, category=category, message=message)
        if not await self.catalog.fail_photo(
            job.photo_id, error=error.message, category=error.category, code=error.code
        ):
            return False
        data = failure_data(job.photo_id, error)
        await self._announce(job, PHOTO_FAILED, data)
        return True

    async def announce_failure(self, photo: PhotoRecord) -> None:
        """Tell the client of the failed ``photo`` its outcome, unless it was told (by the
        once-key): the failure hook marks the row first and announces after, so a worker
        that dies in between leaves this to the reconciler."""
        error = error_of(photo)
        if error is not None:
            job = ready_job(self.settings, photo)
            await self._announce(job, PHOTO_FAILED, failure_data(job.photo_id, error))

    async def follow_up_failed(
        self, job: PhotoProcessingJob, *, code: str, category: str, message: str
    ) -> None:
        """Record the failed follow-up on the photo, which stays ready: neither a redelivered
        upload job nor the reconciler queues it again for a result that will not come."""
        # The photo's metadata is its client's to read: the error as the client sees it.
        error = photo_error(code=code, category=category, message=message)
        failure = {"failed": True, "code": code, "category": category, "message": error.message}
        await self.catalog.add_deferred_results(
            job.photo_id,
            metadata=dict.fromkeys(job.pipeline.stages, failure),
            derivatives=[],
            replaces=(),
        )

    # --- retried, re-queued, remade (the api and its reconciler) -------------------------------

    async def retry(self, job_id: str, photo: PhotoRecord | None) -> None:
        """Mark the photo queued, then revive its dead-lettered job (or add a fresh one).

        The row changes first so a worker that takes the job at once finds it queued; if the
        queue then fails, the row is restored, because a ``queued`` photo whose job sits in
        the failed set is one the reconciler would never repair.
        """
        if photo is not None:
            await self.catalog.requeue_photo(photo.id)
        parked = False
        try:
            if photo is not None:
                # The failure was announced under the once-key; the retry's outcome must be
                # too. Reopened before the queue step, or a worker quick to take the job
                # could announce its outcome under the old key, which would swallow it.
                await park_once(self.queue.redis, photo.client_id, completion_once_key(photo.id))
                parked = True
            revived = await self.queue.retry_failed(job_id)
            if not revived and photo is not None:
                # The dead letter is gone (removed by an admin, or trimmed): enqueue afresh.
                await self.enqueue(ready_job(self.settings, photo))
        except (FilmstripError, RedisError):
            if photo is not None:
                await self.catalog.fail_photo(
                    photo.id,
                    error=photo.processing_error or "retry failed",
                    category=photo.error_category or Category.TEMPORARY,
                    code=photo.error_code or UNKNOWN_CODE,
                )
                if parked:
                    await self._restore_told(photo)
            raise

    async def _restore_told(self, photo: PhotoRecord) -> None:
        """After a retry that failed: the restored failure was announced, so its once-key
        comes back, or the reconciler would announce it a second time."""
        restore = functools.partial(
            restore_once, self.queue.redis, photo.client_id, completion_once_key(photo.id)
        )
        try:
            await _through_blips(restore, DELETION_RETRY_S)
        except FilmstripError as exc:
            log.warning(
                "could not restore a failed retry's once-key; its failure may be announced again",
                extra={"photo_id": photo.id, "error": str(exc)},
            )

    async def requeue(self, photo: PhotoRecord) -> None:
        """Give a queued or processing photo whose job was lost its job again."""
        await forget_once(self.queue.redis, photo.client_id, completion_once_key(photo.id))
        await self.enqueue(ready_job(self.settings, photo))
        await self.catalog.requeue_photo(photo.id)

    async def requeue_follow_up(self, photo: PhotoRecord) -> list[str]:
        """Give a ready photo whose follow-up job was lost a follow-up for the deferred
        stages that have no result yet; those stages (none: nothing was queued)."""
        _, deferred = split_deferred(resolve_stages(photo_pipeline(self.settings, photo)))
        owed = owed_stages(deferred, photo.processing_metadata)
        if owed:
            job = follow_up_job(
                ready_job(self.settings, photo), owed, self.settings.jobs.deferred_priority
            )
            await self.enqueue(job)
        return owed

    async def remake(self, photo: PhotoRecord, derivative: str) -> AddResult:
        """Queue the job that makes ``derivative`` of the ready ``photo`` again, found short or
        missing (workers write derivatives without fsync, so a power cut can leave one so).
        Once: while it waits or runs, asking again is a no-op."""
        # Removed once done, so a later damage (another power cut) can queue it again.
        job = remake_job(self.settings, photo, derivative)
        return await self.enqueue(job, remove_on_complete=True)

    # --- events ---------------------------------------------------------------------------------

    async def notify(
        self, job: PhotoProcessingJob, type_: str, data: dict[str, Any], *, hold: bool = False
    ) -> None:
        """Publish an event of the photo; one that cannot be is logged, not raised: the
        catalog is the truth and clients resync from it. With ``hold`` it may wait up to
        ``HOLD_S`` for the job's next event and go out with it in one Redis call (a fast
        photo's started and stage events and its completion: one call, not five)."""
        event = self._event(job, type_, data)
        if hold:
            held = self._held.setdefault(job.id, [])
            held.append(event)
            if len(held) == 1:
                asyncio.get_running_loop().call_later(HOLD_S, self._flush_later, job)
            return
        try:
            await self._send(job, event)
        except (FilmstripError, RedisError) as exc:
            log.warning("event %s not published: %s", type_, exc, extra={"photo_id": job.photo_id})

    def _flush_later(self, job: PhotoProcessingJob) -> None:
        task = asyncio.create_task(self.flush(job))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def flush(self, job: PhotoProcessingJob) -> None:
        """Publish the events of ``job`` held back (logged if they cannot be)."""
        try:
            await self._send(job, None)
        except (FilmstripError, RedisError) as exc:
            log.warning("events not published: %s", exc, extra={"photo_id": job.photo_id})

    async def _send(
        self, job: PhotoProcessingJob, event: Event | None, once_key: str | None = None
    ) -> None:
        # The job's held events go first, in the same call, in their order.
        turn = self._turns.get(job.id)
        if turn is None:
            turn = self._turns[job.id] = asyncio.Lock()
        async with turn:
            events = self._held.pop(job.id, [])
            if event is not None:
                events.append(event)
            if not events:
                return
            try:
                await self.events.publish_events(events, once_key=once_key)
            except FilmstripError:
                if once_key is not None and len(events) > 1:
                    # An announcement is retried: its held events go with the retry.
                    self._held[job.id] = [*events[:-1], *self._held.get(job.id, [])]
                raise

    async def _announce(self, job: PhotoProcessingJob, type_: str, data: dict[str, Any]) -> None:
        # A photo's outcome must reach its client: retry through a Redis blip, then fail
        # (the caller's attempt is retried and announces again, at most once by the key).
        event = self._event(job, type_, data)
        send = functools.partial(self._send, job, event, once_key=completion_once_key(job.photo_id))
        try:
            await _through_blips(send, ANNOUNCE_RETRY_S)
        except FilmstripError as exc:
            raise TemporaryError(
                f"could not announce {type_}: {exc}", code="event_unpublished"
            ) from exc

    def _event(self, job: PhotoProcessingJob, type_: str, data: dict[str, Any]) -> Event:
        return self.events.event(
            type_,
            photo_id=job.photo_id,
            client_id=job.context.client_id,
            session_id=job.context.session_id,
            trace_id=job.context.trace_id,
            data=data,
        )
