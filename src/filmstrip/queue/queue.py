"""A queue's Redis side: add, cancel, pause, inspect, retry dead letters, and (for
:class:`~filmstrip.queue.Consumer`) take and settle jobs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec
from redis.commands.core import AsyncScript

from filmstrip import keys
from filmstrip.compat.redis import bulk
from filmstrip.queue import lua
from filmstrip.queue.job import AddResult, Job, JobError, JobInfo, JobState
from filmstrip.queue.metrics import WINDOWS, QueueStats, window_stats
from filmstrip.queue.options import QueueOptions, RetentionSpec, retention_args
from filmstrip.queue.policy import Outcome, Settlement
from filmstrip.redis_client import RedisClient
from filmstrip.script_wire import ScriptWire

_pack = msgspec.msgpack.Encoder().encode


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Step(NamedTuple):
    """What one :meth:`JobQueue.step` did: per settlement 1 applied, 2 applied by an earlier
    call whose reply was lost, 0 not applied (the job was taken back); the jobs taken; and
    why none were (paused, the limiter's wait, ms until the next delayed job or -1)."""

    applied: list[int]
    jobs: list[Job]
    paused: bool
    limited_ms: int
    next_due_ms: int


class Reclaimed(NamedTuple):
    """What one :meth:`JobQueue.reclaim` did: where to go on, how many jobs went back to
    waiting, and the jobs dead-lettered for stalling too often."""

    cursors: list[str]
    requeued: int
    dead: list[Job]


class JobQueue:
    """One named queue on Redis Streams (priority bands, delayed set, dead-letter stream)."""

    def __init__(self, redis: RedisClient, options: QueueOptions | None = None) -> None:
        self.redis = redis
        self.options = options or QueueOptions()
        self.keys = keys.QueueKeys.of(self.options.name)
        self._default_roc = _spec(self.options.remove_on_complete)
        self._default_rof = _spec(self.options.remove_on_fail)
        # Every script takes the same KEYS and leading ARGV (filmstrip.queue.lua), pre-encoded
        # so each call skips encoding them again.
        self._keys_b = [k.encode() for k in self.keys.scripts]
        self._base_args_b = [
            a.encode()
            for a in (self.keys.job_prefix, self.keys.stats_prefix, keys.QUEUE_GROUP,
                      self._default_roc, self._default_rof)
        ]  # fmt: skip
        self._scripts: dict[str, AsyncScript] = {}
        for attr in ("ADD", "STEP", "ACTIVATE", "RECLAIM", "CANCEL", "RETRY_FAILED",
                     "REMOVE_FAILED", "PROGRESS", "COUNTS"):  # fmt: skip
            self._scripts[attr] = redis.register_script(lua.PRELUDE + getattr(lua, attr))
        # The consumer's per-batch scripts skip redis-py's per-call encoding.
        self._wires = {
            name: ScriptWire(redis, self._scripts[name], self._keys_b, self._base_args_b)
            for name in ("STEP", "ACTIVATE")
        }
        self._band = {s.encode(): band for band, s in enumerate(self.keys.streams, start=1)}
        self._step_heads: dict[str, bytes] = {}
        self._limiter_b = bulk(self.options.limiter_max) + bulk(self.options.limiter_duration_ms)

    async def _run(self, script: str, args: Sequence[Any]) -> Any:
        wire = self._wires.get(script)
        if wire is not None:
            return await wire(args)
        return await self._scripts[script](keys=self._keys_b, args=[*self._base_args_b, *args])

    async def ensure_groups(self) -> None:
        """Create every band's stream and consumer group (idempotent)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.keys.streams:
                pipe.xgroup_create(stream, keys.QUEUE_GROUP, id="0", mkstream=True)
            results = await pipe.execute(raise_on_error=False)
        for res in results:
            if isinstance(res, Exception) and "BUSYGROUP" not in str(res):
                raise res

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
        o = self.options
        prio = o.priority if priority is None else priority
        if not 1 <= prio <= 10:
            raise ValueError(f"priority must be 1..10, got {prio}")
        # Options equal to the queue's defaults are not stored on the job (memory).
        att = "" if attempts is None or attempts == o.attempts else max(attempts, 1)
        bo = "" if backoff_ms is None or backoff_ms == o.backoff_ms else max(backoff_ms, 0)
        roc = "" if remove_on_complete is None else _spec(remove_on_complete)
        rof = "" if remove_on_fail is None else _spec(remove_on_fail)
        created, state = await self._run(
            "ADD",
            [job_id, payload, prio, att, bo, max(delay_ms, 0),
             "" if roc == self._default_roc else roc, "" if rof == self._default_rof else rof],
        )  # fmt: skip
        return AddResult(job_id, bool(created), JobState(_s(state)))

    async def cancel(self, job_id: str) -> bool:
        """Remove a waiting or delayed job; an active or finished job is left alone (False)."""
        return bool(await self._run("CANCEL", [job_id]))

    # --- control -----------------------------------------------------------------------------

    async def pause(self) -> None:
        """Workers stop taking new jobs; jobs already running finish."""
        await self.redis.set(self.keys.paused, b"1")

    async def resume(self) -> None:
        """Workers take jobs again."""
        await self.redis.delete(self.keys.paused)

    async def is_paused(self) -> bool:
        """Whether the queue is paused."""
        return bool(await self.redis.exists(self.keys.paused))

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
        prefix = self.keys.stats_prefix
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
            zkey = self.keys.failed if state is JobState.FAILED else self.keys.completed
            members: Any = await self.redis.zrevrange(zkey, offset, offset + limit - 1)
            ids = [_s(m) for m in members]
        elif state is JobState.DELAYED:
            members = await self.redis.zrange(self.keys.delayed, offset, offset + limit - 1)
            ids = [_s(m) for m in members]
        else:
            return await self._stream_jobs(state, offset, limit)
        return [i for i in await self._infos(ids) if i.state is state][:limit]

    async def _stream_jobs(self, state: JobState, offset: int, limit: int) -> list[JobInfo]:
        # Waiting and active jobs both live in the band streams (active ones are pending
        # entries); walk the bands in priority order and keep the jobs in ``state``.
        found: list[JobInfo] = []
        for stream in self.keys.streams:
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
                pipe.hgetall(self.keys.job_prefix + job_id)
            pipe.zmscore(self.keys.delayed, list(ids))
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

    # --- the consumer's side -----------------------------------------------------------------
    # What a Consumer calls (one script call or one pipeline each); nothing else needs them.

    async def step(self, consumer: str, want: int, settled: Sequence[Settlement]) -> Step:
        """Apply ``settled`` (a completion with the jobs its delivery queues with it: see
        :meth:`Job.then_add`) and take up to ``want`` waiting jobs for ``consumer`` (band 1
        first, due delayed jobs promoted first, within the limiter), in one script call."""
        packed = b""
        # The payloads of jobs added with a completion go as arguments of their own after
        # the outcomes (the script's msgpack decoder reads no binary strings).
        payloads: list[bytes] = []
        if settled:
            # One msgpack blob: packing hundreds of small arguments costs more client CPU
            # than the whole script costs Redis.
            rows: list[tuple[Any, ...]] = []
            for d in settled:
                job, err = d.job, d.error
                if job.then and d.outcome is Outcome.COMPLETE:
                    then = []
                    for job_id, payload, prio in job.then:
                        payloads.append(payload)
                        then.append((job_id, 10 + len(payloads), prio))
                    rows.append((job.id, job.entry_id, job.priority, "c", 0, "", "", "", then))
                elif err is None:
                    rows.append((job.id, job.entry_id, job.priority, d.outcome.value, d.delay_ms))
                else:
                    rows.append((
                        job.id, job.entry_id, job.priority, d.outcome.value, d.delay_ms,
                        err.category.value, err.code, err.message,
                    ))  # fmt: skip
            packed = _pack(rows)
        o = self.options
        args = (consumer, want, o.limiter_max, o.limiter_duration_ms, packed)
        # The consumer's name and the limiter are the same on every call: encoded once.
        head = self._step_heads.get(consumer)
        if head is None:
            head = bulk(consumer)
            if len(self._step_heads) < 64:
                self._step_heads[consumer] = head
        tail = self._limiter_b + bulk(packed)
        step_wire = self._wires["STEP"]
        applied, flat, paused, limited, next_due = await step_wire.encoded(
            (*args, *payloads), b"".join((head, bulk(want), tail, *map(bulk, payloads)))
        )
        return Step(applied, self._jobs(flat), bool(paused), int(limited), int(next_due))

    async def read(self, consumer: str, count: int, block_ms: int) -> list[Job]:
        """Wait up to ``block_ms`` for new jobs in any band and take up to ``count``. An
        entry read but not taken (Redis failed in between) waits for :meth:`reclaim`."""
        streams: dict[Any, Any] = dict.fromkeys(self.keys.streams, ">")
        reply: Any = await self.redis.xreadgroup(
            keys.QUEUE_GROUP, consumer, streams, count=count, block=max(block_ms, 1)
        )
        if not reply:
            return []
        args: list[Any] = []
        for stream, entries in reply:
            band = self._band[stream if isinstance(stream, bytes) else stream.encode()]
            for eid, fields in entries:
                args += [band, eid, fields[b"i"]]
        return self._jobs(await self._run("ACTIVATE", [len(args) // 3, *args]))

    async def renew(self, consumer: str, jobs: Iterable[Job]) -> None:
        """Reset the idle time of ``consumer``'s claims on ``jobs``, so no one reclaims them."""
        by_stream: dict[str, list[Any]] = {}
        for job in jobs:
            by_stream.setdefault(self.keys.streams[job.priority - 1], []).append(job.entry_id)
        if not by_stream:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xclaim(stream, keys.QUEUE_GROUP, consumer, 0, ids, justid=True)
            await pipe.execute()

    async def reclaim(
        self, consumer: str, cursors: Sequence[str] | None, prune_idle_ms: int = 0
    ) -> Reclaimed:
        """Put jobs held longer than the visibility timeout without renewal back to waiting,
        or dead-letter them after ``max_stalled`` stalls; 100 per band from ``cursors`` (None:
        the start). With ``prune_idle_ms``, drop consumers idle that long holding nothing."""
        o = self.options
        cursors = cursors or ["0-0"] * len(self.keys.streams)
        new_cursors, requeued, dead = await self._run(
            "RECLAIM",
            [consumer, o.visibility_timeout_ms, o.max_stalled, 100, *cursors, prune_idle_ms],
        )
        jobs = [
            Job(id=_s(job_id), entry_id="", priority=int(band), payload=data,
                attempt=int(made or 0), attempts=int(att or o.attempts), deferrals=0,
                backoff_ms=o.backoff_ms, store=self)
            for job_id, band, data, made, att in _rows(dead, 5)
        ]  # fmt: skip
        return Reclaimed([_s(c) for c in new_cursors], int(requeued), jobs)

    async def leave(self, consumer: str) -> None:
        """Remove ``consumer`` from the group: only once it holds nothing, since its pending
        entries go with it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.keys.streams:
                pipe.xgroup_delconsumer(stream, keys.QUEUE_GROUP, consumer)
            await pipe.execute(raise_on_error=False)

    def _jobs(self, flat: Sequence[Any]) -> list[Job]:
        # Ids and entry ids come back as bytes (the client does not decode replies).
        o = self.options
        return [
            Job(id=flat[i].decode(), entry_id=flat[i + 1].decode(), priority=int(flat[i + 2]),
                payload=flat[i + 3], attempt=int(flat[i + 4]),
                attempts=int(flat[i + 5]) if flat[i + 5] else o.attempts,
                deferrals=int(flat[i + 6]),
                backoff_ms=int(flat[i + 7]) if flat[i + 7] else o.backoff_ms, store=self)
            for i in range(0, len(flat), 8)
        ]  # fmt: skip


def _rows(flat: Sequence[Any], width: int) -> Iterable[Sequence[Any]]:
    return (flat[i : i + width] for i in range(0, len(flat), width))


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
