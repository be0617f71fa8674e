"""``GET /v1/dashboard``: everything the queue dashboard draws, in one admin-only read."""

from __future__ import annotations

from aiohttp import web

from filmstrip import keys
from filmstrip.metrics.stage_stats import read_stage_series
from filmstrip.protocols.http import SessionCounts
from filmstrip.protocols.web import BusInstance, Dashboard, MinuteCounts
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.json import json_response
from filmstrip.services.api.middleware import client_of
from filmstrip.services.api.state import state_of

MINUTES = 60


def _int(row: dict[bytes, bytes], name: str) -> int:
    raw = row.get(name.encode())
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


async def dashboard(request: web.Request) -> web.StreamResponse:
    """Counts, an hour of throughput and stage times, and the bus processes."""
    if not client_of(request).is_admin:
        raise ApiError(403, "forbidden", "the dashboard needs an admin token")
    state = state_of(request)
    redis, queue = state.redis, state.queue
    seconds, _micro = await redis.time()
    now_ms = int(seconds) * 1000
    minute = now_ms // 60_000
    prefix = keys.queue_stats_prefix(queue.options.name)
    first = minute - MINUTES + 1
    async with redis.pipeline(transaction=False) as pipe:
        for m in range(first, minute + 1):
            pipe.hmget(f"{prefix}m:{m}", "c", "f")
        pipe.zrange(keys.bus_instances(), 0, -1)
        *buckets, instance_ids = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for iid in instance_ids:
            pipe.hgetall(keys.bus_instance(iid.decode()))
        rows: list[dict[bytes, bytes]] = await pipe.execute()
    bus = [
        BusInstance(
            id=iid.decode(),
            host=row.get(b"host", b"").decode(),
            port=_int(row, "port"),
            sockets=_int(row, "sockets"),
            identified=_int(row, "identified"),
            rooms=_int(row, "rooms"),
            delivered=_int(row, "delivered"),
            updated_at_ms=_int(row, "updated_at"),
        )
        for iid, row in zip(instance_ids, rows, strict=True)
        if row  # an expired hash: that process died without withdrawing
    ]
    counts = await queue.counts()
    photos = await state.catalog.count_by_status()
    body = Dashboard(
        queue=queue.options.name,
        now_ms=now_ms,
        counts=counts,
        photos=SessionCounts(**photos, total=sum(photos.values())),
        paused=bool(counts.get("paused")),
        throughput=MinuteCounts(
            start_ms=first * 60_000,
            completed=[int(c or 0) for c, _f in buckets],
            failed=[int(f or 0) for _c, f in buckets],
        ),
        stages=await read_stage_series(redis, now_ms=now_ms, minutes=MINUTES),
        bus=bus,
    )
    return json_response(body, headers={"Cache-Control": "no-store"})
