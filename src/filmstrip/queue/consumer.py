"""The worker side: take jobs, run the handler with bounded concurrency, settle outcomes.

One loop does all the queue traffic: each STEP call settles every job that finished since
the last call and takes as many new jobs as there are free slots, so a busy consumer costs
one round trip per batch. Two side tasks keep claims alive (heartbeat) and take over the
jobs of consumers that died (reclaim).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import redis.exceptions

from filmstrip import keys
from filmstrip.errors import Category, FilmstripError, TemporaryError
from filmstrip.instance import instance_name
from filmstrip.queue.job import Job
from filmstrip.queue.policy import Outcome, decide
from filmstrip.queue.queue import JobQueue
from filmstrip.tasks import cancel_and_wait

log = logging.getLogger("filmstrip.queue")

Handler = Callable[[Job], Awaitable[None]]
JobHook = Callable[[Job], Awaitable[None]]
FailedHook = Callable[[Job, FilmstripError], Awaitable[None]]

#: Errors that mean "Redis is unreachable for now": wait and carry on.
# A consumer idle this many visibility timeouts with nothing pending belongs to a dead worker.
PRUNE_AFTER_VIS = 10

# STEP's flag for an outcome an earlier call stored (its reply lost to a dropped connection).
APPLIED_BEFORE = 2

# How long a finished job may wait for the next fetch before it is settled on its own.
SETTLE_S = 0.01

_pack = msgspec.msgpack.Encoder().encode

REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class _Done:
    __slots__ = ("delay_ms", "error", "job", "outcome")

    def __init__(
        self, job: Job, outcome: Outcome, delay_ms: int = 0, error: FilmstripError | None = None
    ) -> None:
        self.job = job
        self.outcome = outcome
        self.delay_ms = delay_ms
        self.error = error


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _reraise_cancel() -> None:
    # redis-py turns a cancellation that lands mid-command into a connection error; a
    # side task that swallowed it would then outlive its consumer.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def default_name() -> str:
    """``worker-<host>-<pid>-<random>``: unique per process even where hosts share a name
    and pid (containers), readable in XINFO CONSUMERS."""
    return instance_name("worker")


class Consumer:
    """Runs ``handler`` for the jobs of ``queue`` until :meth:`stop`; survives Redis outages."""

    def __init__(
        self,
        queue: JobQueue,
        handler: Handler,
        *,
        on_failed: FailedHook | None = None,
        on_completed: JobHook | None = None,
        on_active: JobHook | None = None,
        concurrency: int | None = None,
        prefetch: int | None = None,
        name: str | None = None,
    ) -> None:
        self.queue = queue
        self.options = queue.options
        self.handler = handler
        self.on_failed = on_failed
        self.on_completed = on_completed
        self.on_active = on_active
        self.concurrency = max(concurrency or self.options.concurrency, 1)
        self.prefetch = max(self.options.prefetch if prefetch is None else prefetch, 0)
        self.name = name or default_name()
        self._running: dict[asyncio.Task[None], Job] = {}
        self._buffer: collections.deque[Job] = collections.deque()
        self._done: list[_Done] = []
        self._hooks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._started = False
        self._down_since: float | None = None
        self._retry_s = 0.05
        self._limiter_max = self.options.limiter_max
        self._limiter_ms = self.options.limiter_duration_ms
        self._attempts = self.options.attempts
        self._backoff_ms = self.options.backoff_ms
        self._busy = 0  # handlers started and not yet finished
        self._stream_band = {s.encode(): i + 1 for i, s in enumerate(queue.streams)}

    @property
    def active(self) -> int:
        """Jobs this consumer holds right now (running or about to run)."""
        return len(self._running) + len(self._buffer)

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT start a graceful :meth:`stop`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    def request_stop(self) -> None:
        """Start a graceful stop without waiting for it (safe from a signal handler)."""
        self._stopping = True
        self._wake.set()

    async def stop(self) -> None:
        """Stop reading, let running jobs finish within the grace period, hand back the rest."""
        self.request_stop()
        if self._started:
            await self._stopped.wait()

    async def run(self) -> None:
        """Process jobs until :meth:`stop` (or :meth:`request_stop`) is called."""
        self._started = True
        side = [
            asyncio.create_task(self._heartbeat(), name=f"{self.name}-heartbeat"),
            asyncio.create_task(self._reclaim(), name=f"{self.name}-reclaim"),
        ]
        try:
            await self._ensure_groups()
            await self._loop()
        finally:
            try:
                await self._shutdown()
            finally:
                await cancel_and_wait(*side)
                self._stopped.set()

    # --- the main loop -----------------------------------------------------------------------

    async def _ensure_groups(self) -> None:
        while not self._stopping:
            try:
                await self.queue.ensure_groups()
                self._up()
                return
            except REDIS_DOWN as exc:
                await self._down(exc)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_step = 0.0
        while not self._stopping:
            while self._buffer and self._busy < self.concurrency:
                self._start(self._buffer.popleft())
            want = self.concurrency + self.prefetch - self._busy - len(self._buffer)
            # Fetch only once the local buffer ran dry, so prefetched jobs come in batches;
            # settle finished jobs with that fetch, or on their own if they waited 10 ms.
            fetch = want > 0 and not self._buffer
            settle = bool(self._done) and (fetch or loop.time() - last_step > SETTLE_S)
            if not (fetch or settle):
                if self._done:
                    await self._sleep(SETTLE_S)
                else:
                    self._wake.clear()
                    await self._wake.wait()
                continue
            done, self._done = self._done, []
            try:
                applied, jobs, paused, limited_ms, next_due_ms = await self._step(
                    done, want if fetch else 0
                )
            except REDIS_DOWN as exc:
                self._done = done + self._done
                await self._down(exc)
                continue
            except redis.exceptions.ResponseError as exc:
                self._done = done + self._done
                await self._response_error(exc)
                continue
            last_step = loop.time()
            self._up()
            self._settled(done, applied)
            for job in jobs:
                self._take(job)
            if jobs or done or not fetch or self._done:
                continue
            if paused:
                await self._sleep(0.2)
            elif limited_ms:
                await self._sleep(limited_ms / 1000)
            elif next_due_ms == 0:
                continue
            else:
                timeout = self.options.block_ms
                if next_due_ms > 0:
                    timeout = min(timeout, next_due_ms)
                if self._busy:
                    # Finished jobs wait for this read to return before they are settled.
                    timeout = min(timeout, 50)
                if self.options.limiter_max:
                    # A blocking read would bypass the limiter; poll instead.
                    await self._sleep(min(timeout, 50) / 1000)
                else:
                    await self._block_read(want, timeout)

    def _take(self, job: Job) -> None:
        if self._busy < self.concurrency:
            self._start(job)
        else:
            self._buffer.append(job)

    async def _step(
        self, done: Sequence[_Done], want: int
    ) -> tuple[list[int], list[Job], int, int, int]:
        # Outcomes travel as one msgpack blob: packing hundreds of small arguments costs
        # more client CPU than the whole script costs Redis.
        packed = b""
        if done:
            rows: list[tuple[Any, ...]] = []
            for d in done:
                job, err = d.job, d.error
                if err is None:
                    rows.append((job.id, job.entry_id, job.priority, d.outcome.value, d.delay_ms))
                else:
                    rows.append((
                        job.id, job.entry_id, job.priority, d.outcome.value, d.delay_ms,
                        err.category.value, err.code, err.message,
                    ))  # fmt: skip
            packed = _pack(rows)
        args = [self.name, want, self._limiter_max, self._limiter_ms, packed]
        applied, flat, paused, limited, next_due = await self.queue._run("STEP", args)
        return applied, self._jobs(flat), int(paused), int(limited), int(next_due)

    def _jobs(self, flat: Sequence[Any]) -> list[Job]:
        queue = self.queue
        jobs = []
        for i in range(0, len(flat), 8):
            job_id, eid, band, data, made, att, deferred, backoff = flat[i : i + 8]
            job = Job(queue, _s(job_id), _s(eid), int(band), data, int(made),
                      int(att) if att else self._attempts, int(deferred),
                      int(backoff) if backoff else self._backoff_ms)  # fmt: skip
            jobs.append(job)
        return jobs

    async def _block_read(self, free: int, timeout_ms: int) -> None:
        streams: dict[Any, Any] = {s: ">" for s in self.queue.streams}
        try:
            reply: Any = await self.queue.redis.xreadgroup(
                keys.QUEUE_GROUP, self.name, streams, count=free, block=max(timeout_ms, 1)
            )
            if not reply:
                return
            args: list[Any] = []
            for stream, entries in reply:
                band = self._stream_band[stream if isinstance(stream, bytes) else stream.encode()]
                for eid, fields in entries:
                    args += [band, eid, fields[b"i"]]
            flat = await self.queue._run("ACTIVATE", [len(args) // 3, *args])
        except REDIS_DOWN as exc:
            # Entries delivered but not activated stay pending; reclaim puts them back.
            await self._down(exc)
            return
        except redis.exceptions.ResponseError as exc:
            await self._response_error(exc)
            return
        for job in self._jobs(flat):
            self._take(job)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancellation that lands
        # as the event fires.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    # --- running one job ---------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        self._busy += 1
        task = asyncio.create_task(self._process(job))
        self._running[task] = job
        task.add_done_callback(self._running_done)

    def _running_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)

    async def _process(self, job: Job) -> None:
        try:
            if self.on_active is not None:
                await self.on_active(job)
            await self.handler(job)
        except asyncio.CancelledError:
            # Only shutdown cancels handlers: give the job back untouched.
            self._finish(_Done(job, Outcome.HAND_BACK))
            return
        except FilmstripError as exc:
            self._fail(job, exc)
            return
        except Exception as exc:
            log.exception("job %s raised an unexpected error; treating it as TEMPORARY", job.id)
            self._fail(job, TemporaryError(f"{type(exc).__name__}: {exc}", code="unexpected"))
            return
        self._finish(_Done(job, Outcome.COMPLETE))

    def _fail(self, job: Job, error: FilmstripError) -> None:
        outcome, delay = decide(
            error.category,
            attempt=job.attempt,
            attempts=job.attempts,
            deferrals=job.deferrals,
            base_ms=job.backoff_ms,
            options=self.options,
        )
        if outcome is not Outcome.FAIL:
            log.info("job %s: %s (%s), %s in %d ms", job.id, error.code, error.category,
                     outcome.name.lower(), delay)  # fmt: skip
        self._finish(_Done(job, outcome, delay, error))

    def _finish(self, done: _Done) -> None:
        self._busy -= 1
        self._done.append(done)
        self._wake.set()

    def _settled(self, done: Sequence[_Done], applied: Sequence[int]) -> None:
        for d, ok in zip(done, applied, strict=True):
            if not ok:
                log.warning("job %s was reclaimed by another worker before it settled", d.job.id)
                continue
            if ok == APPLIED_BEFORE:
                # The hooks still run: the first call's reply, and with it their turn, was lost.
                log.info("job %s: its outcome was stored before the reply was lost", d.job.id)
            if d.outcome is Outcome.FAIL and self.on_failed is not None:
                assert d.error is not None
                self._hook(self.on_failed(d.job, d.error))
            elif d.outcome is Outcome.COMPLETE and self.on_completed is not None:
                self._hook(self.on_completed(d.job))

    def _hook(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("queue hook failed")

        task = asyncio.create_task(guarded())
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    # --- claims ------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        # Renew the claim (reset the idle time) on every held job so no one reclaims it.
        while True:
            await asyncio.sleep(self.options.heartbeat_s)
            # Finished-but-unsettled jobs too: their outcome is not in Redis yet.
            held = [*self._running.values(), *self._buffer, *(d.job for d in self._done)]
            if not held:
                continue
            by_stream: dict[str, list[Any]] = {}
            for job in held:
                by_stream.setdefault(self.queue.streams[job.priority - 1], []).append(job.entry_id)
            try:
                async with self.queue.redis.pipeline(transaction=False) as pipe:
                    for stream, ids in by_stream.items():
                        pipe.xclaim(stream, keys.QUEUE_GROUP, self.name, 0, ids, justid=True)
                    await pipe.execute()
            except (*REDIS_DOWN, redis.exceptions.ResponseError) as exc:
                _reraise_cancel()
                log.warning("heartbeat failed: %s", exc)

    async def _reclaim(self) -> None:
        cursors = ["0-0"] * len(self.queue.streams)
        o = self.options
        rounds = 0
        while not self._stopping:
            await asyncio.sleep(o.reclaim_s)
            # Every 60 rounds (30 visibility timeouts), drop consumers of dead workers.
            prune = PRUNE_AFTER_VIS * o.visibility_timeout_ms if rounds % 60 == 0 else 0
            rounds += 1
            try:
                new_cursors, requeued, dead = await self.queue._run(
                    "RECLAIM",
                    [self.name, o.visibility_timeout_ms, o.max_stalled, 100, *cursors, prune],
                )
            except (*REDIS_DOWN, redis.exceptions.ResponseError) as exc:
                _reraise_cancel()
                log.warning("reclaim failed: %s", exc)
                continue
            cursors = [_s(c) for c in new_cursors]
            if requeued:
                log.warning("%d stalled jobs put back to waiting", requeued)
            for i in range(0, len(dead), 5):
                job = Job(
                    self.queue, _s(dead[i]), "", int(dead[i + 1]), dead[i + 2],
                    int(dead[i + 3] or 0), int(dead[i + 4] or o.attempts), 0, o.backoff_ms,
                )  # fmt: skip
                log.error("job %s stalled more than %d times; dead-lettered", job.id, o.max_stalled)
                if self.on_failed is not None:
                    error = FilmstripError(
                        "the job stalled repeatedly (its worker died or hung)",
                        code="stalled",
                        category=Category.DATA,
                    )
                    self._hook(self.on_failed(job, error))

    # --- Redis health ------------------------------------------------------------------------

    async def _down(self, exc: BaseException) -> None:
        _reraise_cancel()
        loop = asyncio.get_running_loop()
        if self._down_since is None:
            self._down_since = loop.time()
            log.warning("redis unreachable (%s); retrying", exc)
        await self._sleep(self._retry_s)
        self._retry_s = min(self._retry_s * 2, 2.0)

    def _up(self) -> None:
        if self._down_since is not None:
            took = asyncio.get_running_loop().time() - self._down_since
            log.warning("redis reachable again after %.1f s", took)
            self._down_since = None
        self._retry_s = 0.05

    async def _response_error(self, exc: redis.exceptions.ResponseError) -> None:
        # A Redis restarted without its data has lost the consumer groups.
        if "NOGROUP" in str(exc):
            log.warning("consumer groups missing; recreating them")
            await self._ensure_groups()
            return
        log.error("unexpected redis error: %s", exc)
        await self._sleep(1.0)

    # --- shutdown ----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        while self._buffer:
            self._done.append(_Done(self._buffer.popleft(), Outcome.HAND_BACK))
        if self._running:
            _, pending = await asyncio.wait(
                list(self._running), timeout=self.options.shutdown_grace_s
            )
            for task in pending:
                task.cancel()
            if pending:
                log.warning("handing back %d jobs still running after the grace period",
                            len(pending))  # fmt: skip
                await asyncio.wait(pending)
        for attempt in range(10):
            if not self._done:
                break
            done, self._done = self._done, []
            try:
                applied, *_ = await self._step(done, 0)
            except REDIS_DOWN as exc:
                self._done = done + self._done
                log.warning("could not settle %d jobs at shutdown (%s); retry %d", len(done),
                            exc, attempt + 1)  # fmt: skip
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
                continue
            self._settled(done, applied)
        if not self._done:
            await self._leave_group()
        if self._hooks:
            await asyncio.wait(list(self._hooks))

    async def _leave_group(self) -> None:
        # Consumer names are per process, so without this every restart would leave one
        # more idle consumer in each group. Only done once nothing of ours is pending:
        # DELCONSUMER drops the consumer's pending entries.
        try:
            async with self.queue.redis.pipeline(transaction=False) as pipe:
                for stream in self.queue.streams:
                    pipe.xgroup_delconsumer(stream, keys.QUEUE_GROUP, self.name)
                await pipe.execute(raise_on_error=False)
        except (*REDIS_DOWN, redis.exceptions.ResponseError) as exc:
            log.warning("could not leave the consumer group: %s", exc)
