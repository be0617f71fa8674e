"""Crash recovery in one process: reclaim after the visibility timeout, heartbeat, poison."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import pytest
import redis.exceptions

from filmstrip import keys
from filmstrip.errors import Category, DataError
from filmstrip.queue import Job, JobQueue, JobState, Outcome, Settlement, Step
from tests.queue.conftest import Recorder, running, wait_for

pytestmark = pytest.mark.both_redis

VIS = 200  # ms


async def _take_as(queue: JobQueue, consumer: str) -> None:
    """Take one job as a consumer that then vanishes without a trace (like SIGKILL)."""
    jobs = (await queue.step(consumer, 1, [])).jobs
    assert jobs, "no job was taken"


async def _reclaim(queue: JobQueue, prune_ms: int = 0) -> None:
    await queue.reclaim("reaper", None, prune_ms)


async def test_a_dead_consumers_job_is_reclaimed_without_spending_an_attempt(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(visibility_timeout_ms=VIS)
    await queue.add("photo:1", b"")
    await _take_as(queue, "killed-worker")
    assert (await queue.counts())["active"] == 1
    rec = Recorder()
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _state(queue, "photo:1", JobState.COMPLETED))
    assert rec.calls == [("photo:1", 1)]


async def test_a_job_whose_reader_died_before_activating_it_is_reclaimed(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(visibility_timeout_ms=VIS)
    await queue.ensure_groups()
    await queue.add("photo:1", b"", priority=3)
    # A worker's blocking read hands it the entry; the worker dies before ACTIVATE.
    streams: dict[Any, Any] = {s: ">" for s in queue.keys.streams}
    reply = await queue.redis.xreadgroup(keys.QUEUE_GROUP, "killed-worker", streams, count=1)
    assert [len(entries) for _, entries in reply] == [1]
    assert await _state(queue, "photo:1", JobState.WAITING)  # delivered, never activated
    assert (await queue.counts())["waiting"] == 0  # and no other read will see it

    bands: list[int] = []

    async def note_band(job: Job) -> None:
        bands.append(job.priority)

    rec = Recorder(note_band)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _state(queue, "photo:1", JobState.COMPLETED))
    assert rec.calls == [("photo:1", 1)] and bands == [3]


async def test_heartbeat_keeps_a_long_job_from_being_stolen(
    make_queue: Callable[..., JobQueue],
) -> None:
    # A longer timeout than the others': at 200 ms a stall of a third of it under the
    # suite's load (two test processes, a Redis Cluster) let the job be taken (CI, once).
    vis = 3 * VIS
    queue = make_queue(visibility_timeout_ms=vis)
    await queue.add("photo:long", b"")
    first_started = asyncio.Event()

    async def long_job(job: Job) -> None:
        first_started.set()
        await asyncio.sleep(vis * 4 / 1000)  # four timeouts: taken over without heartbeats

    a, b = Recorder(long_job), Recorder(long_job)
    async with running(a.consumer(queue, name="a")):
        await first_started.wait()
        async with running(b.consumer(queue, name="b")):
            await wait_for(lambda: _state(queue, "photo:long", JobState.COMPLETED))
    assert len(a.calls) + len(b.calls) == 1


async def test_a_job_that_stalls_too_often_is_dead_lettered(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(visibility_timeout_ms=VIS, max_stalled=1)
    await queue.add("photo:poison", b"boom")
    await _take_as(queue, "killed-1")
    await asyncio.sleep(VIS * 1.5 / 1000)
    await _reclaim(queue)  # first stall: back to waiting
    assert await _state(queue, "photo:poison", JobState.WAITING)
    await _take_as(queue, "killed-2")
    rec = Recorder()
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _state(queue, "photo:poison", JobState.FAILED))
        await wait_for(lambda: _true(len(rec.failed) == 1))
    assert rec.calls == []
    job_id, error = rec.failed[0]
    # Retryable by its owner: the worker may have died of its host, not of the file.
    assert job_id == "photo:poison" and error.code == "stalled"
    assert error.category is Category.RESOURCE
    failed = await queue.list_jobs("failed")
    assert [j.id for j in failed] == ["photo:poison"]
    assert failed[0].error is not None and failed[0].error.category == "RESOURCE"


async def test_graceful_stop_hands_back_unfinished_jobs_at_once(
    make_queue: Callable[..., JobQueue],
) -> None:
    # A visibility timeout far longer than the test: only a hand-back can free the job.
    queue = make_queue(visibility_timeout_ms=60_000, shutdown_grace_s=0.05)
    await queue.add("photo:stuck", b"")
    await queue.add("photo:quick", b"")
    started = asyncio.Event()

    async def handler(job: Job) -> None:
        if job.id == "photo:stuck":
            started.set()
            await asyncio.Event().wait()

    first = Recorder(handler)
    async with running(first.consumer(queue, concurrency=2)):
        await started.wait()
        await wait_for(lambda: _state(queue, "photo:quick", JobState.COMPLETED))
    info = await queue.get_job("photo:stuck")
    assert info is not None and info.state is JobState.WAITING and info.attempts_made == 0

    second = Recorder()
    async with running(second.consumer(queue)):
        await wait_for(lambda: _state(queue, "photo:stuck", JobState.COMPLETED))
    assert second.calls == [("photo:stuck", 1)]


async def test_graceful_stop_hands_back_prefetched_jobs_too(
    make_queue: Callable[..., JobQueue],
) -> None:
    # Jobs taken ahead of a free slot are active in Redis: dropped at shutdown, they would
    # wait out the visibility timeout, or be lost once the consumer leaves the group.
    queue = make_queue(visibility_timeout_ms=60_000, shutdown_grace_s=0.05)
    for n in range(3):
        await queue.add(f"photo:{n}", b"")
    started = asyncio.Event()

    async def handler(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    async with running(Recorder(handler).consumer(queue, concurrency=1, prefetch=2)):
        await started.wait()
        await wait_for(lambda: _counted(queue, "active", 3))
    for n in range(3):
        info = await queue.get_job(f"photo:{n}")
        assert info is not None and info.state is JobState.WAITING, info
        assert info.attempts_made == 0
    second = Recorder()
    async with running(second.consumer(queue)):
        await wait_for(lambda: _state(queue, "photo:2", JobState.COMPLETED))
    assert sorted(job_id for job_id, _ in second.calls) == ["photo:0", "photo:1", "photo:2"]


async def test_a_handed_back_job_keeps_its_priority(
    make_queue: Callable[..., JobQueue],
) -> None:
    """A job handed back at shutdown returns to its own band: ahead of a later job of
    lower priority (3), which a job put back in the default band (5) would follow."""
    queue = make_queue(visibility_timeout_ms=60_000, shutdown_grace_s=0.05)
    await queue.add("photo:urgent", b"", priority=2)
    started = asyncio.Event()

    async def handler(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    async with running(Recorder(handler).consumer(queue)):
        await started.wait()
    await queue.add("photo:later", b"", priority=3)
    second = Recorder()
    async with running(second.consumer(queue, concurrency=1)):
        await wait_for(lambda: _state(queue, "photo:later", JobState.COMPLETED))
    assert [job_id for job_id, _ in second.calls] == ["photo:urgent", "photo:later"]


async def test_graceful_stop_lets_running_jobs_finish_within_the_grace(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(shutdown_grace_s=5.0)
    await queue.add("photo:1", b"")
    started = asyncio.Event()

    async def handler(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.1)

    rec = Recorder(handler)
    async with running(rec.consumer(queue, name="leaving")):
        await started.wait()
    assert await _state(queue, "photo:1", JobState.COMPLETED)
    # A stopped consumer leaves the group rather than lingering in it forever.
    consumers = await queue.redis.xinfo_consumers(queue.keys.streams[4], keys.QUEUE_GROUP)
    assert [c["name"] for c in consumers] == []


async def _state(queue: JobQueue, job_id: str, state: JobState) -> bool:
    info = await queue.get_job(job_id)
    return info is not None and info.state is state


async def _true(value: bool) -> bool:
    return value


async def _counted(queue: JobQueue, state: str, n: int) -> bool:
    return (await queue.counts())[state] == n


async def test_consumers_of_dead_workers_are_pruned_once_idle_and_empty(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(visibility_timeout_ms=VIS)
    await queue.add("photo:1", b"")
    await _take_as(queue, "killed-worker")
    stream = queue.keys.streams[4]
    await asyncio.sleep(VIS * 1.5 / 1000)
    # Idle long enough, but it still holds a job (not reclaimed yet: min idle 60 s): kept.
    patient = JobQueue(
        queue.redis, msgspec.structs.replace(queue.options, visibility_timeout_ms=60_000)
    )
    await patient.reclaim("reaper", None, VIS)
    assert "killed-worker" in await _consumers(queue, stream)
    # Once its job is taken back it holds nothing and goes.
    await _reclaim(queue, prune_ms=VIS)
    assert "killed-worker" not in await _consumers(queue, stream)
    assert await _state(queue, "photo:1", JobState.WAITING)


async def _consumers(queue: JobQueue, stream: str) -> list[str]:
    infos = await queue.redis.xinfo_consumers(stream, keys.QUEUE_GROUP)
    return [i["name"].decode() if isinstance(i["name"], bytes) else i["name"] for i in infos]


async def test_a_settle_sent_again_after_its_reply_was_lost_is_recognised(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(visibility_timeout_ms=VIS)
    await queue.add("photo:bad", b"")
    (taken,) = (await queue.step("w1", 1, [])).jobs
    job_id = taken.id.encode()
    assert job_id == b"photo:bad"
    fail = [Settlement(taken, Outcome.FAIL, error=DataError("no", code="bad"))]
    first = (await queue.step("w1", 0, fail)).applied
    again = (await queue.step("w1", 0, fail)).applied
    assert (first, again) == ([1], [2])
    # Once the job runs again under a new delivery, the old one's outcome is nobody's.
    assert await queue.retry_failed("photo:bad")
    assert await _state(queue, "photo:bad", JobState.WAITING)
    stale = (await queue.step("w1", 0, fail)).applied
    assert stale == [0]


async def test_a_late_settle_of_a_reclaimed_delivery_leaves_the_new_one_alone(
    make_queue: Callable[..., JobQueue],
) -> None:
    # A worker that hung past the visibility timeout wakes and settles a job that was
    # reclaimed and is now running elsewhere: its outcome must not end the new delivery.
    queue = make_queue(visibility_timeout_ms=VIS)
    await queue.add("photo:1", b"")
    (old,) = (await queue.step("hung", 1, [])).jobs
    await asyncio.sleep(VIS * 1.5 / 1000)
    await _reclaim(queue)
    (new,) = (await queue.step("w2", 1, [])).jobs
    assert new.entry_id != old.entry_id
    for outcome in (Outcome.COMPLETE, Outcome.FAIL, Outcome.HAND_BACK):
        late = Settlement(old, outcome, error=DataError("late", code="late"))
        assert (await queue.step("hung", 0, [late])).applied == [0], outcome
        assert await _state(queue, "photo:1", JobState.ACTIVE), outcome
    assert (await queue.step("w2", 0, [Settlement(new, Outcome.COMPLETE)])).applied == [1]
    assert await _state(queue, "photo:1", JobState.COMPLETED)


class _CannotSettleFor(JobQueue):
    """A real queue that cannot reach Redis to settle jobs for ``outage_s`` once asked."""

    outage_s = 0.0
    _until: float | None = None

    async def step(self, consumer: str, want: int, settled: Sequence[Settlement]) -> Step:
        if settled:
            now = asyncio.get_running_loop().time()
            if self._until is None:
                self._until = now + self.outage_s
            if now < self._until:
                raise redis.exceptions.ConnectionError("Connection refused.")
        return await super().step(consumer, want, settled)


async def test_a_finished_job_waiting_to_be_settled_keeps_its_claim(
    make_queue: Callable[..., JobQueue],
) -> None:
    # Its outcome is not in Redis yet: the heartbeat must keep renewing it, or another
    # worker reclaims it after the visibility timeout and runs it a second time.
    plain = make_queue(visibility_timeout_ms=VIS)
    queue = _CannotSettleFor(plain.redis, plain.options)
    queue.outage_s = VIS * 3 / 1000
    await queue.add("photo:1", b"")
    first, other = Recorder(), Recorder()
    async with running(first.consumer(queue, name="first")):
        await wait_for(lambda: _true(len(first.calls) == 1))
        async with running(other.consumer(plain, name="other")):
            await wait_for(lambda: _state(queue, "photo:1", JobState.COMPLETED))
    assert (first.calls, other.calls) == ([("photo:1", 1)], [])
    assert first.completed == ["photo:1"]


async def test_a_prefetched_job_keeps_its_claim_while_it_waits_for_a_slot(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(visibility_timeout_ms=VIS)
    await queue.add("photo:slow", b"")
    await queue.add("photo:next", b"")

    async def slow(job: Job) -> None:
        if job.id == "photo:slow":
            await asyncio.sleep(VIS * 3 / 1000)

    first, other = Recorder(slow), Recorder()
    async with running(first.consumer(queue, name="first", concurrency=1, prefetch=1)):
        await wait_for(lambda: _counted(queue, "active", 2))
        async with running(other.consumer(queue, name="other")):
            await wait_for(lambda: _state(queue, "photo:next", JobState.COMPLETED))
    assert (first.calls, other.calls) == ([("photo:slow", 1), ("photo:next", 1)], [])


class _LosesOneReply(JobQueue):
    """A real queue whose first settling STEP is carried out by Redis, but whose reply
    never arrives, as when Redis restarts between the two."""

    lost = False

    async def step(self, consumer: str, want: int, settled: Sequence[Settlement]) -> Step:
        reply = await super().step(consumer, want, settled)
        if settled and not self.lost:
            self.lost = True
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        return reply


async def test_a_failure_whose_settle_reply_was_lost_still_reaches_the_hook(
    make_queue: Callable[..., JobQueue],
) -> None:
    plain = make_queue()
    queue = _LosesOneReply(plain.redis, plain.options)
    await queue.add("photo:corrupt", b"")

    async def corrupt(job: Job) -> None:
        raise DataError("cannot be decoded", code="corrupt_image")

    rec = Recorder(corrupt)
    async with running(rec.consumer(queue)):
        await wait_for(lambda: _true(len(rec.failed) == 1))
    assert queue.lost
    assert [(job_id, e.code) for job_id, e in rec.failed] == [("photo:corrupt", "corrupt_image")]
    assert await _state(queue, "photo:corrupt", JobState.FAILED)
