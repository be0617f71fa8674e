"""Per-stage processing times in per-minute Redis buckets, for the dashboard's chart.

Each worker adds its stage timings to ``keys.stage_stats_minute(minute)`` (fields
``<stage>:n`` and ``<stage>:ms``), summed in memory and written once a second
(:class:`StageTimingsBuffer`); the api reads the last hour in one pipeline. Buckets
expire after two hours, so nothing needs trimming.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from redis.exceptions import RedisError

from filmstrip import keys
from filmstrip.protocols.web import StageSeries
from filmstrip.redis_client import RedisClient

log = logging.getLogger("filmstrip.metrics.stage_stats")

_TTL_S = 2 * 3600


class StageTimingsBuffer:
    """Stage timings summed in memory and added to Redis every ``interval_s``: one
    pipeline per worker every few seconds, not one per job (the dashboard shows minutes;
    a flush a second was ~4% of a busy worker's event loop). A killed worker loses what it
    had not written (at most ``interval_s`` of dashboard figures, nothing else)."""

    def __init__(self, redis: RedisClient, *, interval_s: float = 5.0) -> None:
        self._redis = redis
        self._interval = interval_s
        self._sums: dict[tuple[int, str], tuple[int, float]] = {}  # (minute, stage) -> n, ms

    def add(self, timings_ms: Mapping[str, float], *, now_ms: int) -> None:
        """Count one job's stage timings in the minute ``now_ms`` falls in."""
        minute = now_ms // 60_000
        for stage, ms in timings_ms.items():
            n, total = self._sums.get((minute, stage), (0, 0.0))
            self._sums[(minute, stage)] = (n + 1, total + float(ms))

    async def flush(self) -> None:
        """Write what was added since the last flush; kept for the next one if Redis
        refuses (the sums are per minute and stage, so an outage cannot grow them much)."""
        if not self._sums:
            return
        sums, self._sums = self._sums, {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (minute, stage), (n, total) in sums.items():
                    key = keys.stage_stats_minute(minute)
                    pipe.hincrby(key, f"{stage}:n", n)
                    pipe.hincrbyfloat(key, f"{stage}:ms", total)
                for minute in {minute for minute, _ in sums}:
                    pipe.expire(keys.stage_stats_minute(minute), _TTL_S)
                await pipe.execute()
        except BaseException as exc:
            # Cancelled or refused: the next flush (the worker's last one, say) writes them.
            for (minute, stage), (n, total) in sums.items():
                later_n, later_total = self._sums.get((minute, stage), (0, 0.0))
                self._sums[(minute, stage)] = (n + later_n, total + later_total)
            if not isinstance(exc, (RedisError, OSError)):
                raise
            log.warning("stage timings not recorded yet: %s", exc)

    async def run(self) -> None:
        """Flush every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()


async def read_stage_series(
    redis: RedisClient, *, now_ms: int, minutes: int = 60
) -> list[StageSeries]:
    """The last ``minutes`` minutes (the current one last) for every stage seen in them."""
    current = now_ms // 60_000
    async with redis.pipeline(transaction=False) as pipe:
        for minute in range(current - minutes + 1, current + 1):
            pipe.hgetall(keys.stage_stats_minute(minute))
        rows: list[dict[bytes, bytes]] = await pipe.execute()
    stages: dict[str, tuple[list[int], list[float]]] = {}
    for index, row in enumerate(rows):
        for field, raw in row.items():
            stage, _, kind = field.decode().rpartition(":")
            runs, sums = stages.setdefault(stage, ([0] * minutes, [0.0] * minutes))
            if kind == "n":
                runs[index] = int(raw)
            elif kind == "ms":
                sums[index] = float(raw)
    return [
        StageSeries(
            stage=stage,
            runs=runs,
            mean_ms=[round(s / n, 1) if n else 0.0 for s, n in zip(sums, runs, strict=True)],
        )
        for stage, (runs, sums) in stages.items()
    ]
