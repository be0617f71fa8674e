"""A hand-rolled job queue on Redis Streams with BullMQ's semantics.

::

    from filmstrip.queue import JobQueue, QueueOptions, Consumer, Job, AddResult

    queue = JobQueue(redis, QueueOptions.from_settings(settings))
    await queue.add("photo:123", payload, priority=5)      # -> AddResult(job_id, created, state)
    await queue.add_bulk([NewJob(job_id=..., payload=...), ...])
    await queue.cancel(job_id); await queue.pause(); await queue.resume()
    await queue.counts(); await queue.stats(); await queue.get_job(job_id)
    await queue.list_jobs("failed", offset, limit)
    await queue.retry_failed(job_id); await queue.remove_failed(job_id)

    consumer = Consumer(queue, handler, on_failed=..., on_completed=..., on_active=...)
    await consumer.run()        # until consumer.stop() / request_stop() / SIGTERM
                                # (after consumer.install_signal_handlers())

Layout (keys in :mod:`filmstrip.keys`, all under the ``{<queue>}`` hash tag): one work
stream per priority band ``{photo-processing}:p1`` .. ``:p10`` (band 1 is read first), a
hash per job ``{photo-processing}:job:<id>`` holding payload, options and state (the stream
entry carries only the id), ``:delayed`` / ``:completed`` / ``:failed`` sorted sets, and
the dead-letter stream ``{photo-processing}-failed``.

Semantics: a handler raising a ``FilmstripError`` decides the outcome by its category
(TEMPORARY: retry with exponential backoff; RESOURCE: deferred without spending an attempt,
up to ``resource_max_deferrals`` times, then like TEMPORARY; DATA / LOGIC: dead-lettered at
once). Any other exception counts as TEMPORARY. A job whose worker stops renewing its claim
for ``visibility_timeout_ms`` goes back to waiting; after ``max_stalled`` such stalls it is
dead-lettered (category DATA, code ``stalled``). ``on_failed`` runs once per dead-lettered
job, after the dead-letter is committed.
"""

from filmstrip.queue.consumer import Consumer
from filmstrip.queue.job import AddResult, Job, JobError, JobInfo, JobState
from filmstrip.queue.metrics import QueueStats, WindowStats
from filmstrip.queue.options import QueueOptions, RetentionSpec
from filmstrip.queue.policy import Outcome, backoff_ms, decide
from filmstrip.queue.queue import JobQueue, NewJob

__all__ = [
    "AddResult",
    "Consumer",
    "Job",
    "JobError",
    "JobInfo",
    "JobQueue",
    "JobState",
    "NewJob",
    "Outcome",
    "QueueOptions",
    "QueueStats",
    "RetentionSpec",
    "WindowStats",
    "backoff_ms",
    "decide",
]
