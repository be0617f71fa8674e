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

import redis.exceptions

from filmstrip.errors import Category, FilmstripError, TemporaryError
from filmstrip.instance import instance_name
from filmstrip.queue.job import Job
from filmstrip.queue.policy import Outcome, Settlement, decide
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

REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


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
        self._done: list[Settlement] = []
        self._hooks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._started = False
        self._down_since: float | None = None
        self._retry_s = 0.05
        self._busy = 0  # handlers started and not yet finished

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
                step = await self.queue.step(self.name, want if fetch else 0, done)
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
            self._settled(done, step.applied)
            for job in step.jobs:
                self._take(job)
            if step.jobs or done or not fetch or self._done:
                continue
            if step.paused:
                await self._sleep(0.2)
            elif step.limited_ms:
                await self._sleep(step.limited_ms / 1000)
            elif step.next_due_ms == 0:
                continue
            else:
                timeout = self.options.block_ms
                if step.next_due_ms > 0:
                    timeout = min(timeout, step.next_due_ms)
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

    async def _block_read(self, free: int, timeout_ms: int) -> None:
        try:
            jobs = await self.queue.read(self.name, free, timeout_ms)
        except REDIS_DOWN as exc:
            await self._down(exc)
            return
        except redis.exceptions.ResponseError as exc:
            await self._response_error(exc)
            return
        for job in jobs:
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
            self._finish(Settlement(job, Outcome.HAND_BACK))
            return
        except FilmstripError as exc:
            self._fail(job, exc)
            return
        except Exception as exc:
            log.exception("job %s raised an unexpected error; treating it as TEMPORARY", job.id)
            self._fail(job, TemporaryError(f"{type(exc).__name__}: {exc}", code="unexpected"))
            return
        self._finish(Settlement(job, Outcome.COMPLETE))

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
        self._finish(Settlement(job, outcome, delay, error))

    def _finish(self, done: Settlement) -> None:
        self._busy -= 1
        self._done.append(done)
        self._wake.set()

    def _settled(self, done: Sequence[Settlement], applied: Sequence[int]) -> None:
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
            try:
                await self.queue.renew(self.name, held)
            except (*REDIS_DOWN, redis.exceptions.ResponseError) as exc:
                _reraise_cancel()
                log.warning("heartbeat failed: %s", exc)

    async def _reclaim(self) -> None:
        cursors = None
        o = self.options
        rounds = 0
        while not self._stopping:
            await asyncio.sleep(o.reclaim_s)
            # Every 60 rounds (30 visibility timeouts), drop consumers of dead workers.
            prune = PRUNE_AFTER_VIS * o.visibility_timeout_ms if rounds % 60 == 0 else 0
            rounds += 1
            try:
                reclaimed = await self.queue.reclaim(self.name, cursors, prune)
            except (*REDIS_DOWN, redis.exceptions.ResponseError) as exc:
                _reraise_cancel()
                log.warning("reclaim failed: %s", exc)
                continue
            cursors = reclaimed.cursors
            if reclaimed.requeued:
                log.warning("%d stalled jobs put back to waiting", reclaimed.requeued)
            for job in reclaimed.dead:
                log.error("job %s stalled more than %d times; dead-lettered", job.id, o.max_stalled)
                if self.on_failed is not None:
                    # RESOURCE, not DATA: a worker dies from the file (a decoder crash) as
                    # well as from its host (memory, a forced restart), and the two look
                    # alike here; the owner may retry it, a DATA failure never.
                    error = FilmstripError(
                        "the job stalled repeatedly (its worker died or hung)",
                        code="stalled",
                        category=Category.RESOURCE,
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
            self._done.append(Settlement(self._buffer.popleft(), Outcome.HAND_BACK))
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
                applied = (await self.queue.step(self.name, 0, done)).applied
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
            await self.queue.leave(self.name)
        except (*REDIS_DOWN, redis.exceptions.ResponseError) as exc:
            log.warning("could not leave the consumer group: %s", exc)
