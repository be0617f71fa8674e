"""A worker's events of one job held back a moment go out together, in order, in one Redis
call; an announcement's once-key still keeps its outcome from being told twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import msgspec
import orjson
import redis.asyncio as aioredis

from filmstrip import keys
from filmstrip.catalog import PhotoStatus
from filmstrip.catalog.sqlite import SqliteCatalog
from filmstrip.errors import TemporaryError
from filmstrip.events import EventPublisher
from filmstrip.photos import PhotoLifecycle, ready_job
from filmstrip.protocols.events import (
    PHOTO_FAILED,
    PHOTO_PROCESSING_STARTED,
    STAGE_COMPLETED,
    Event,
)
from filmstrip.queue import JobQueue
from filmstrip.settings import load_settings
from tests.photos.test_jobs import PHOTO


def _lifecycle(
    redis: aioredis.Redis, tmp_path: Path, events: EventPublisher | None = None
) -> PhotoLifecycle:
    # notify and the publisher touch neither the catalog nor the queue.
    settings = load_settings({})
    catalog = SqliteCatalog(str(tmp_path / "unused.db"))
    return PhotoLifecycle(
        settings, catalog, JobQueue(redis), events or EventPublisher(redis), signing_secret=b"k"
    )


async def _stream(redis: aioredis.Redis) -> list[tuple[str, dict[str, object]]]:
    entries = await redis.xrange(keys.client_events(PHOTO.client_id))
    return [(eid.decode(), orjson.loads(fields[b"e"])) for eid, fields in entries]


async def test_held_events_go_out_with_the_jobs_next_event_in_one_call(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    photos = _lifecycle(redis, tmp_path)
    job = ready_job(photos.settings, PHOTO)
    # Once before counting: the first call of a script Redis has not seen takes two.
    await photos.events.publish(STAGE_COMPLETED, photo_id="w", client_id="w", trace_id="t" * 32)
    await redis.config_resetstat()
    await photos.notify(job, PHOTO_PROCESSING_STARTED, {"attempt": 1}, hold=True)
    await photos.notify(job, STAGE_COMPLETED, {"stage": "validation"}, hold=True)
    assert await _stream(redis) == []
    await photos.notify(job, STAGE_COMPLETED, {"stage": "metadata"})
    calls = (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    assert calls == 1
    events = [e for _id, e in await _stream(redis)]
    assert [(e["type"], e["data"].get("stage")) for e in events] == [
        (PHOTO_PROCESSING_STARTED, None),
        (STAGE_COMPLETED, "validation"),
        (STAGE_COMPLETED, "metadata"),
    ]


async def test_a_held_event_goes_out_on_its_own_when_nothing_follows(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    photos = _lifecycle(redis, tmp_path)
    job = ready_job(photos.settings, PHOTO)
    await photos.notify(job, PHOTO_PROCESSING_STARTED, {"attempt": 1}, hold=True)
    for _ in range(100):
        if await _stream(redis):
            break
        await asyncio.sleep(0.05)
    assert [e["type"] for _id, e in await _stream(redis)] == [PHOTO_PROCESSING_STARTED]


async def test_a_batch_tells_its_last_event_once_by_its_key(redis: aioredis.Redis) -> None:
    publisher = EventPublisher(redis)

    def event(type_: str, stage: str) -> object:
        return publisher.event(
            type_, photo_id="p1", client_id="c", trace_id="t" * 32, data={"stage": stage}
        )

    first = await publisher.publish_events(
        [event(STAGE_COMPLETED, "a"), event(STAGE_COMPLETED, "done")], once_key="k"
    )
    again = await publisher.publish_events(
        [event(STAGE_COMPLETED, "b"), event(STAGE_COMPLETED, "done again")], once_key="k"
    )
    assert again == first
    stream = await redis.xrange(keys.client_events("c"))
    stages = [orjson.loads(fields[b"e"])["data"]["stage"] for _eid, fields in stream]
    assert stages == ["a", "done", "b"]
    assert stream[1][0].decode() == first


class _Blinking(EventPublisher):
    """The real publisher, except that its first call fails before Redis runs it."""

    blinks = 1

    async def publish_events(self, events: Sequence[Event], *, once_key: str | None = None) -> str:
        if self.blinks:
            self.blinks -= 1
            raise TemporaryError("Redis blinked", code="redis_unavailable")
        return await super().publish_events(events, once_key=once_key)


async def test_an_announcement_that_redis_refused_once_goes_out_with_its_held_events(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    # The outcome is retried through a blip, and the events held back for it go with it:
    # a client would otherwise see a photo fail that never started.
    photos = _lifecycle(redis, tmp_path, _Blinking(redis))
    failed = msgspec.structs.replace(
        PHOTO, status=PhotoStatus.FAILED, error_code="corrupt", error_category="DATA"
    )
    job = ready_job(photos.settings, failed)
    await photos.notify(job, PHOTO_PROCESSING_STARTED, {"attempt": 1}, hold=True)
    await photos.notify(job, STAGE_COMPLETED, {"stage": "validation"}, hold=True)
    await photos.announce_failure(failed)
    events = [e for _id, e in await _stream(redis)]
    assert [(e["type"], e["data"].get("stage")) for e in events] == [
        (PHOTO_PROCESSING_STARTED, None),
        (STAGE_COMPLETED, "validation"),
        (PHOTO_FAILED, None),
    ]
