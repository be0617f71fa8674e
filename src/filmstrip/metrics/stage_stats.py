"""Per-stage processing times in per-minute Redis buckets, for the dashboard's chart.

Each worker adds its stage timings to ``keys.stage_stats_minute(minute)`` (fields
``<stage>:n`` and ``<stage>:ms``); the api reads the last hour in one pipeline. Buckets
expire after two hours, so nothing needs trimming.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from filmstrip import keys
from protocols.web import StageSeries

_TTL_S = 2 * 3600


async def record_stage_timings(
    redis: aioredis.Redis, timings_ms: Mapping[str, float], *, now_ms: int
) -> None:
    """Add one job's stage timings to the current minute's bucket."""
    key = keys.stage_stats_minute(now_ms // 60_000)
    async with redis.pipeline(transaction=False) as pipe:
        for stage, ms in timings_ms.items():
            pipe.hincrby(key, f"{stage}:n", 1)
            pipe.hincrbyfloat(key, f"{stage}:ms", float(ms))
        pipe.expire(key, _TTL_S)
        await pipe.execute()


async def read_stage_series(
    redis: aioredis.Redis, *, now_ms: int, minutes: int = 60
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
