"""A hand-rolled job queue on Redis Streams with BullMQ's semantics.

::

    from filmstrip.queue import JobQueue, QueueOptions, Consumer, Job, AddResult

    queue = JobQueue(redis, QueueOptions.from_settings(settings))  # redis: decode_responses=False
    res = await queue.add("photo:123", payload, priority=5)   # AddResult(job_id, created, state)
    await queue.cancel(job_id)            # waiting/delayed only; False for active or finished
    await queue.pause(); await queue.resume(); await queue.is_paused()
    await queue.counts()                  # waiting, active, delayed, completed, failed, paused
    await queue.stats()                   # QueueStats(last_1h, last_24h, last_7d)
    await queue.get_job(job_id)           # JobInfo | None
    await queue.list_jobs("failed", offset, limit)   # also waiting, active, delayed, completed
    await queue.retry_failed(job_id); await queue.remove_failed(job_id)

    async def handler(job: Job) -> None: ...   # raise a FilmstripError to fail
    job.then_add("next:123", payload, priority=10)   # queued with job's completion, atomically
    consumer = Consumer(queue, handler, on_failed=..., on_completed=..., on_active=...,
                        concurrency=3, prefetch=0, name="worker-<host>-<pid>")
    consumer.install_signal_handlers()    # SIGTERM/SIGINT -> graceful stop
    await consumer.run()                  # until stop() / request_stop()

The seam: a :class:`Consumer` reaches Redis only through the queue's consumer-side methods
(``step``, ``read``, ``renew``, ``reclaim``, ``leave``), one script call or pipeline each.

Layout (``queue.keys``, named in :mod:`filmstrip.keys`, all under the ``{<queue>}`` hash tag
so one queue is one Cluster slot): a work stream per priority band ``{photo-processing}:p1``
.. ``:p10`` with one consumer group ``workers``; a hash per job
``{photo-processing}:job:<id>`` holding the payload, state and any non-default options (the
stream entry carries only the id); ``:delayed``, ``:completed`` and ``:failed`` sorted
sets; ``:paused``; ``:limiter``; ``:stats:m:<minute>`` / ``:stats:h:<hour>`` counters; and
the dead-letter stream ``{photo-processing}-failed`` (fields id, job, error, code, category,
attempts, failed_at).

Every state change is one Lua script (:mod:`filmstrip.queue.lua`). A consumer makes one
STEP call per batch: it settles every job that finished since the last call (XACK + XDEL,
retention, stats) and takes as many jobs as it has free slots, band 1 first, FIFO within a
band, promoting due delayed jobs first. When nothing is waiting it blocks on XREADGROUP
across the bands (never while the limiter is on, and the activation re-checks pause).

Semantics:

- Errors: TEMPORARY retries after ``backoff_ms·2^(attempt-1)`` (minus up to
  ``backoff_jitter`` of it); RESOURCE is deferred on the same schedule without spending an
  attempt, at most ``resource_max_deferrals`` times, then counts like TEMPORARY; DATA and
  LOGIC are dead-lettered at once. Any other exception is TEMPORARY (and logged).
- Crash safety: a job is owned by its stream entry id. Consumers renew their claims every
  ``visibility_timeout/3`` (XCLAIM JUSTID); every ``visibility_timeout/2`` each consumer runs
  XAUTOCLAIM (cursors carried forward) and puts jobs idle longer than the visibility timeout
  back to waiting without spending an attempt, or dead-letters them (category DATA, code
  ``stalled``) after ``max_stalled`` stalls. A late settle from a worker that lost its job is
  ignored, so a job is completed once in Redis.
- Graceful stop: stop reading, let running jobs finish for ``shutdown_grace_s``, then cancel
  them and hand them back (waiting again at once, attempt not spent).
- Redis outages: every Redis error in the consumer is retried with backoff (50 ms .. 2 s);
  outcomes of jobs that finished meanwhile are kept and settled after the reconnect.
- ``on_failed`` runs once per dead-lettered job (poison path included), after the
  dead-letter is committed; ``on_completed`` after the completion is committed.
- The limiter (``FILMSTRIP_LIMITER_MAX`` jobs per ``FILMSTRIP_LIMITER_DURATION_MS``, off by
  default) bounds how many jobs all consumers start per window.
- ``prefetch`` (``FILMSTRIP_WORKER_PREFETCH``, default 0) lets a consumer hold that many jobs
  beyond ``concurrency`` so it fetches and settles in batches: much faster for short jobs,
  but held jobs cannot go to an idle worker, so photo workers leave it at 0.
"""

from filmstrip.queue.consumer import Consumer
from filmstrip.queue.job import AddResult, Job, JobError, JobInfo, JobState
from filmstrip.queue.metrics import QueueStats, WindowStats
from filmstrip.queue.options import QueueOptions, Retention, RetentionSpec
from filmstrip.queue.policy import Outcome, Settlement, backoff_ms, decide
from filmstrip.queue.queue import JobQueue, Reclaimed, Step

__all__ = [
    "AddResult",
    "Consumer",
    "Job",
    "JobError",
    "JobInfo",
    "JobQueue",
    "JobState",
    "Outcome",
    "QueueOptions",
    "QueueStats",
    "Reclaimed",
    "Retention",
    "RetentionSpec",
    "Settlement",
    "Step",
    "WindowStats",
    "backoff_ms",
    "decide",
]
