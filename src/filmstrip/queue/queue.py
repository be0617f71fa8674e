"""The producer and admin side of a queue: add, cancel, pause, inspect, retry dead letters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.commands.core import AsyncScript

from filmstrip import keys
from filmstrip.queue import lua
from filmstrip.queue.job import AddResult, JobError, JobInfo, JobState
from filmstrip.queue.metrics import WINDOWS, QueueStats, window_stats
from filmstrip.queue.options import QueueOptions, RetentionSpec, retention_args
from filmstrip.redis_client import RedisClient
from filmstrip.script_wire import ScriptWire


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """One job for :meth:`JobQueue.add_bulk`; unset options take the queue's defaults."""

    job_id: str
    payload: bytes
    priority: int | None = None
    attempts: int | None = None
    backoff_ms: int | None = None
    delay_ms: int = 0
    remove_on_complete: RetentionSpec | None = None
    remove_on_fail: RetentionSpec | None = None


_pack = msgspec.msgpack.Encoder().encode


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobQueue:
    """One named queue on Redis Streams (priority bands, delayed set, dead-letter stream)."""

    def __init__(self, redis: RedisClient, options: QueueOptions | None = None) -> None:
        self.redis = redis
        self.options = options or QueueOptions()
        name = self.options.name
        self.streams = [keys.queue_stream(name, p) for p in keys.PRIORITIES]
        self.dead_letter_key = keys.queue_dead_letter(name)
        self._keys: list[str] = [
            *self.streams,
            keys.queue_delayed(name),
            keys.queue_completed(name),
            keys.queue_failed_index(name),
            self.dead_letter_key,
            keys.queue_paused(name),
            keys.queue_limiter(name),
        ]
        self._default_roc = _spec(self.options.remove_on_complete)
        self._default_rof = _spec(self.options.remove_on_fail)
        self._base_args: list[str] = [
            keys.queue_job_prefix(name),
            keys.queue_stats_prefix(name),
            keys.QUEUE_GROUP,
            self._default_roc,
            self._default_rof,
        ]
        # Pre-encoded so each script call skips re-encoding the same 19 strings.
        self._keys_b = [k.encode() for k in self._keys]
        self._base_args_b = [a.encode() for a in self._base_args]
        self._scripts: dict[str, AsyncScript] = {}
        for attr in ("ADD", "ADD_BULK", "STEP", "ACTIVATE", "RECLAIM", "CANCEL", "RETRY_FAILED",
                     "REMOVE_FAILED", "PROGRESS", "COUNTS"):  # fmt: skip
            self._scripts[attr] = redis.register_script(lua.PRELUDE + getattr(lua, attr))
        # The consumer's per-batch scripts skip redis-py's per-call encoding.
        self._wires = {
            name: ScriptWire(redis, self._scripts[name], self._keys_b, self._base_args_b)
            for name in ("STEP", "ACTIVATE")
        }

    # --- internals shared with the consumer ------------------------------------------------

    async def _run(self, script: str, args: Sequence[Any], client: Any = None) -> Any:
        wire = self._wires.get(script) if client is None else None
        if wire is not None:
            return await wire(args)
        return await self._scripts[script](
            keys=self._keys_b, args=[*self._base_args_b, *args], client=client
        )

    async def ensure_groups(self) -> None:
        """Create every band's stream and consumer group (idempotent)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.streams:
                pipe.xgroup_create(stream, keys.QUEUE_GROUP, id="0", mkstream=True)
            results = await pipe.execute(raise_on_error=False)
        for res in results:
            if isinstance(res, Exception) and "BUSYGROUP" not in str(res):
                raise res

    def _add_args(
        self,
        job_id: str,
        payload: bytes,
        priority: int | None,
        attempts: int | None,
        backoff_ms: int | None,
        delay_ms: int,
        remove_on_complete: RetentionSpec | None,
        remove_on_fail: RetentionSpec | None,
    ) -> list[Any]:
        o = self.options
        prio = o.priority if priority is None else priority
        if not 1 <= prio <= 10:
            raise ValueError(f"priority must be 1..10, got {prio}")
        # Options equal to the queue's defaults are not stored on the job (memory).
        att = "" if attempts is None or attempts == o.attempts else max(attempts, 1)
        bo = "" if backoff_ms is None or backoff_ms == o.backoff_ms else max(backoff_ms, 0)
        roc = "" if remove_on_complete is None else _spec(remove_on_complete)
        rof = "" if remove_on_fail is None else _spec(remove_on_fail)
        return [
            job_id,
            payload,
            prio,
            att,
            bo,
            max(delay_ms, 0),
            "" if roc == self._default_roc else roc,
            "" if rof == self._default_rof else rof,
        ]

    # --- producer ----------------------------------------------------------------------------

    async def add(
        self,
        job_id: str,
        payload: bytes,
        *,
        priority: int | None = None,
        attempts: int | None = None,
        backoff_ms: int | None = None,
        delay_ms: int = 0,
        remove_on_complete: RetentionSpec | None = None,
        remove_on_fail: RetentionSpec | None = None,
    ) -> AddResult:
        """Enqueue a job; adding an id that exists is a no-op that reports the existing job."""
        args = self._add_args(
            job_id, payload, priority, attempts, backoff_ms, delay_ms,
            remove_on_complete, remove_on_fail,
        )  # fmt: skip
        created, state = await self._run("ADD", args)
        return AddResult(job_id, bool(created), JobState(_s(state)))

    async def add_bulk(self, jobs: Iterable[NewJob], *, chunk: int = 500) -> list[AddResult]:
        """Enqueue many jobs, ``chunk`` per script call (each job still deduplicated)."""
        results: list[AddResult] = []
        batch: list[NewJob] = []

        async def flush() -> None:
            meta: list[list[Any]] = []
            payloads: list[bytes] = []
            for j in batch:
                a = self._add_args(
                    j.job_id, j.payload, j.priority, j.attempts, j.backoff_ms, j.delay_ms,
                    j.remove_on_complete, j.remove_on_fail,
                )  # fmt: skip
                payloads.append(a.pop(1))
                meta.append(a)
            reply = await self._run("ADD_BULK", [_pack(meta), *payloads])
            for i, j in enumerate(batch):
                created, state = reply[2 * i], reply[2 * i + 1]
                results.append(AddResult(j.job_id, bool(created), JobState(_s(state))))
            batch.clear()

        for job in jobs:
            batch.append(job)
            if len(batch) >= chunk:
                await flush()
        if batch:
            await flush()
        return results

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job; an active or finished job is left alone (False)."""
        return bool(await self._run("CANCEL", [job_id]))

    # --- control -----------------------------------------------------------------------------

    async def pause(self) -> None:
        """Workers stop taking new jobs; jobs already running finish."""
        await self.redis.set(self._keys[14], b"1")

    async def resume(self) -> None:
        """Workers take jobs again."""
        await self.redis.delete(self._keys[14])

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        return bool(await self.redis.exists(self._keys[14]))

    # --- inspection --------------------------------------------------------------------------

    async def backlog(self, top_band: int) -> tuple[int, int]:
        """(waiting jobs in priority bands 1..``top_band``, waiting jobs in every band), each
        with the delayed ones: what new work queues behind, and what Redis holds."""
        w, _a, d, _c, _f, _p, top = await self._run("COUNTS", [top_band])
        return int(top) + int(d), int(w) + int(d)

    async def counts(self) -> dict[str, int]:
        """Jobs per state: waiting, active, delayed, completed, failed; ``paused`` is 0 or 1."""
        w, a, d, c, f, p, _top = await self._run("COUNTS", [])
        return {
            "waiting": int(w),
            "active": int(a),
            "delayed": int(d),
            "completed": int(c),
            "failed": int(f),
            "paused": int(p),
        }

    async def stats(self) -> QueueStats:
        """Totals, success rate, mean processing time and throughput for 1 h, 24 h and 7 d."""
        now_s, _ = await self.redis.time()
        now_ms = int(now_s) * 1000
        minute, hour = now_ms // 60_000, now_ms // 3_600_000
        prefix = self._base_args[1]
        names = [f"{prefix}m:{minute - i}" for i in range(60)]
        names += [f"{prefix}h:{hour - i}" for i in range(WINDOWS[-1][1])]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(name, "c", "f", "t")
            rows = await pipe.execute()
        buckets = [tuple(int(v or 0) for v in row) for row in rows]
        minutes, hours = buckets[:60], buckets[60:]
        return QueueStats(
            last_1h=window_stats(minutes, 3600),
            last_24h=window_stats(hours[:24], 24 * 3600),
            last_7d=window_stats(hours, 7 * 24 * 3600),
        )

    async def get_job(self, job_id: str) -> JobInfo | None:
        """A snapshot of one job, or None if it does not exist (any more)."""
        infos = await self._infos([job_id])
        return infos[0] if infos else None

    async def list_jobs(
        self, state: JobState | str = JobState.FAILED, offset: int = 0, limit: int = 50
    ) -> list[JobInfo]:
        """One page of jobs in ``state``; failed and completed newest first, delayed by due time."""
        state = JobState(state)
        offset, limit = max(offset, 0), max(min(limit, 1000), 0)
        ids: list[str]
        if state in (JobState.FAILED, JobState.COMPLETED):
            zkey = self._keys[12] if state is JobState.FAILED else self._keys[11]
            members: Any = await self.redis.zrevrange(zkey, offset, offset + limit - 1)
            ids = [_s(m) for m in members]
        elif state is JobState.DELAYED:
            members = await self.redis.zrange(self._keys[10], offset, offset + limit - 1)
            ids = [_s(m) for m in members]
        else:
            return await self._stream_jobs(state, offset, limit)
        return [i for i in await self._infos(ids) if i.state is state][:limit]

    async def _stream_jobs(self, state: JobState, offset: int, limit: int) -> list[JobInfo]:
        # Waiting and active jobs both live in the band streams (active ones are pending
        # entries); walk the bands in priority order and keep the jobs in ``state``.
        found: list[JobInfo] = []
        for stream in self.streams:
            start = "-"
            while len(found) < offset + limit:
                entries: Any = await self.redis.xrange(stream, min=start, count=500)
                if not entries:
                    break
                ids = [_s(fields[b"i"]) for _, fields in entries]
                found += [i for i in await self._infos(ids) if i.state is state]
                start = "(" + _s(entries[-1][0])
        return found[offset : offset + limit]

    async def _infos(self, ids: Sequence[str]) -> list[JobInfo]:
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self._base_args[0] + job_id)
            pipe.zmscore(self._keys[10], list(ids))
            *rows, due = await pipe.execute()
        return [
            _info(job_id, row, due_ms, self.options.attempts)
            for job_id, row, due_ms in zip(ids, rows, due, strict=True)
            if row
        ]

    # --- dead letters ------------------------------------------------------------------------

    async def retry_failed(self, job_id: str) -> bool:
        """Send a dead-lettered job back to waiting with fresh attempts."""
        return bool(await self._run("RETRY_FAILED", [job_id]))

    async def remove_failed(self, job_id: str) -> bool:
        """Delete a dead-lettered job and its dead-letter entry."""
        return bool(await self._run("REMOVE_FAILED", [job_id]))

    async def set_progress(self, job_id: str, entry_id: str, percent: int) -> bool:
        """Store progress on an active job if ``entry_id`` is still its delivery."""
        pct = max(0, min(100, int(percent)))
        return bool(await self._run("PROGRESS", [job_id, entry_id, pct]))


def _spec(spec: RetentionSpec) -> str:
    age, count = retention_args(spec)
    return f"{age}:{count}"


def _int(row: dict[bytes, bytes], field: bytes) -> int | None:
    raw = row.get(field)
    return int(raw) if raw not in (None, b"") else None


def _info(job_id: str, row: dict[bytes, bytes], due_ms: float | None, attempts: int) -> JobInfo:
    error = None
    if row.get(b"code"):
        error = JobError(
            code=_s(row[b"code"]),
            category=_s(row.get(b"cat", b"")),
            message=_s(row.get(b"err", b"")),
        )
    return JobInfo(
        id=job_id,
        state=JobState(_s(row[b"state"])),
        priority=_int(row, b"prio") or 5,
        attempts=_int(row, b"att") or attempts,
        attempts_made=_int(row, b"made") or 0,
        progress=_int(row, b"prog") or 0,
        created_at_ms=_int(row, b"ts") or 0,
        processed_at_ms=_int(row, b"pt"),
        finished_at_ms=_int(row, b"ft"),
        delayed_until_ms=int(due_ms) if due_ms is not None else None,
        error=error,
        payload=row.get(b"data", b""),
    )
