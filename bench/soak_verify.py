"""What the soaks check at the end: every accepted upload has its row, in a final state,
with exactly its derivatives in the store; no blob without a row; every client saw each
completion once; only hostile files failed, and only as DATA."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from bench.soak_clients import ClientStats
from bench.stats import percentile
from filmstrip.catalog.base import Catalog


async def wait_drained(redis_url: str, limit_s: float) -> float:
    """When the queue last held no waiting, active or delayed job (monotonic time)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from filmstrip.queue import JobQueue, QueueOptions
    from filmstrip.settings import load_settings

    redis = aioredis.Redis.from_url(redis_url)
    queue = JobQueue(redis, QueueOptions.from_settings(load_settings({})))
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            try:
                counts = await queue.counts()
            except (OSError, RedisError):
                counts = {"waiting": 1}  # Redis restarting: not drained yet
            if not (counts.get("waiting", 0) + counts.get("active", 0) + counts.get("delayed", 0)):
                break
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()
    return time.monotonic()


async def wait_terminal(catalog: Catalog, ids: list[str], limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    rows: dict[str, Any] = {}
    while True:
        rows = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            for row in await catalog.read(
                f"SELECT id, status, error_category, derivatives FROM photos WHERE id IN ({marks})",
                chunk,
            ):
                rows[row[0]] = row
        pending = [i for i in ids if i not in rows or rows[i][1] not in ("completed", "failed")]
        if not pending or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1.0)


def _derivative_keys(value: Any) -> set[str]:
    """The keys in a row's derivatives column (JSON text, or already decoded)."""
    items = orjson.loads(value or "[]") if isinstance(value, str | bytes) else value or []
    return {d["key"] for d in items}


async def verify(
    catalog: Catalog,
    store_env: dict[str, str],
    redis_url: str,
    stats: list[ClientStats],
    *,
    limit_s: float,
    orphan_wait_s: float = 15 + 5 + 10,
) -> tuple[dict[str, Any], list[str]]:
    """The table's counts and the broken guarantees. ``catalog`` is connected; the store
    is opened from ``store_env``; orphans may take ``orphan_wait_s`` to be swept."""
    import redis.asyncio as aioredis

    from filmstrip.blobs import open_blob_store
    from filmstrip.queue import JobQueue, QueueOptions
    from filmstrip.settings import load_settings

    problems: list[str] = []
    accepted = {pid for s in stats for pid in s.accepted}
    bad = {pid for s in stats for pid in s.expected_bad}
    rows = await wait_terminal(catalog, sorted(accepted), limit_s)

    lost = [p for p in accepted if p not in rows]
    stuck = [p for p in accepted if p in rows and rows[p][1] not in ("completed", "failed")]
    completed = [p for p in accepted if p in rows and rows[p][1] == "completed"]
    failed_by: dict[str, int] = {}
    for p in accepted:
        if p in rows and rows[p][1] == "failed":
            failed_by[rows[p][2] or "?"] = failed_by.get(rows[p][2] or "?", 0) + 1
            if p not in bad:
                problems.append(f"good photo {p} failed ({rows[p][2]})")
    for p in bad:
        if p in rows and rows[p][1] == "completed":
            problems.append(f"hostile file {p} completed")
    if lost:
        problems.append(f"{len(lost)} accepted uploads have no photo row")
    if stuck:
        problems.append(f"{len(stuck)} photos stuck: {stuck[:5]}")
    if set(failed_by) - {"DATA"}:
        problems.append(f"failures that are not DATA: {failed_by}")

    blobs = await open_blob_store(load_settings(store_env))
    all_rows = {photo_id async for photo_id in catalog.iter_all_photo_ids()}
    # Orphans are legitimate for a moment (an outage can cut the answer to a put that S3
    # stored); the reconciler must remove them within its grace + interval.
    swept_wait = time.monotonic() + orphan_wait_s
    first_orphans: set[str] | None = None
    while True:
        by_photo: dict[str, set[str]] = {}
        async for info in blobs.list(""):
            parts = info.key.split("/")
            if len(parts) >= 2:
                by_photo.setdefault(parts[1], set()).add(info.key)
        orphans = [p for p in by_photo if p not in all_rows]
        if first_orphans is None:
            first_orphans = set(orphans)
        if not orphans or time.monotonic() > swept_wait:
            break
        await asyncio.sleep(1.0)
    await blobs.close()
    if orphans:
        problems.append(f"{len(orphans)} photos' blobs have no row (orphans not swept)")
    wrong_derivatives = 0
    for p in completed:
        expected = _derivative_keys(rows[p][3])
        present = {k for k in by_photo.get(p, set()) if k.startswith("derivatives/")}
        if expected != present or f"originals/{p}" not in by_photo.get(p, set()):
            wrong_derivatives += 1
    if wrong_derivatives:
        problems.append(f"{wrong_derivatives} completed photos lack exactly their derivatives")

    missed = sum(1 for s in stats for p in s.accepted if p not in s.completion)
    dup_events = sum(max(0, n - 1) for s in stats for n in s.completion_events.values())
    if missed:
        problems.append(f"{missed} completion events never reached their client")

    redis = aioredis.Redis.from_url(redis_url)
    queue = JobQueue(redis, QueueOptions.from_settings(load_settings({})))
    dead = await queue.list_jobs("failed", offset=0, limit=10_000)
    dead_categories = {j.error.category for j in dead if getattr(j, "error", None)}
    if dead_categories - {"DATA"}:
        problems.append(f"dead-letter holds non-DATA failures: {dead_categories}")
    await redis.aclose()

    e2e = [s.completion[p] - s.accepted[p] for s in stats for p in s.accepted if p in s.completion]
    upload = [x for s in stats for x in s.upload_latency]
    report: dict[str, Any] = {
        "uploads accepted": len(accepted),
        "completed": len(completed),
        "failed (by category)": ", ".join(f"{k} {v}" for k, v in sorted(failed_by.items())) or "0",
        "lost (must be 0)": len(lost) + len(stuck),
        "duplicates (must be 0)": dup_events,
        "events missed (must be 0)": missed,
        "orphan blobs left (must be 0)": len(orphans),
        "orphan blobs swept by the reconciler": len(first_orphans or ()),
        "refused then retried (503/conn)": sum(s.refused for s in stats),
        "retries answered as a duplicate (stored before)": sum(
            s.answered_as_duplicate for s in stats
        ),
        "socket reconnects": sum(s.reconnects for s in stats),
        "socket drops by cause": ", ".join(
            f"{k} {v}" for k, v in sorted(_merge([s.drops for s in stats]).items())
        )
        or "none",
        "upload latency p50 / p99": _ms_pair(upload),
        "end-to-end p50 / p99": _ms_pair(e2e),
        "_e2e_span": (min(s.accepted[p] for s in stats for p in s.accepted), max(e2e_end(stats))),
    }
    return report, problems


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _ms_pair(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:.0f} / {percentile(values, 0.99) * 1000:.0f} ms"


def e2e_end(stats: list[ClientStats]) -> list[float]:
    return [t for s in stats for t in s.completion.values()] or [time.monotonic()]
