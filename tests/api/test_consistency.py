"""The consistency manager: outbox relay, orphan blob sweep, and re-enqueue of stuck photos."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import msgspec
import orjson
import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.catalog import (
    OutboxEntry,
    PhotoRecord,
    PhotoStatus,
    QuotaExceeded,
    catalog_for_url,
    utcnow,
)
from filmstrip.catalog.base import shift_time
from filmstrip.embedded.redis_server import free_port
from filmstrip.errors import DataError, TemporaryError
from filmstrip.photos import PhotoLifecycle, completion_once_key, encode_job, lifecycle, ready_job
from filmstrip.protocols.events import PHOTO_FAILED
from filmstrip.protocols.jobs import deferred_job_id_for
from filmstrip.queue import JobQueue, JobState, Outcome, Settlement
from filmstrip.services.api.accept import discard_unrecorded
from filmstrip.services.api.reconciler import (
    announce_lost_failures,
    orphan_sweep_done,
    orphan_sweep_due,
    reconcile_once,
    requeue_follow_ups,
    requeue_stuck,
    sweep_orphan_blobs,
)
from filmstrip.services.api.relay import relay_once
from filmstrip.services.api.state import STATE
from filmstrip.services.cli.tokens import issue_token
from tests.api.conftest import EVERY_BLOB, Api, api_settings, start_api
from tests.api.factories import fake_jpeg


def _row(api: Api, *, status: str = PhotoStatus.QUEUED) -> PhotoRecord:
    pid = str(uuid.uuid4())
    return PhotoRecord(
        id=pid, client_id="c-test", session_id=None, blob_key=f"originals/{pid}",
        content_type="image/jpeg", bytes=3, sha256=None, status=status,
        job_id=f"photo:{pid}", trace_id=uuid.uuid4().hex, uploaded_at=utcnow(),
    )  # fmt: skip


async def _age(api: Api, *photos: PhotoRecord) -> None:
    """Make photos look untouched since 2000 (the catalog stamps every write with now)."""
    for photo in photos:
        await api.state.catalog._execute(
            "UPDATE photos SET updated_at = ? WHERE id = ?", ("2000-01-01T00:00:00.000Z", photo.id)
        )


async def _outbox_entry(api: Api, *, priority: int = 5) -> OutboxEntry:
    """A photo row with its outbox entry, as an upload whose enqueue never happened."""
    photo = _row(api)
    job = ready_job(api.settings, photo)
    entry = OutboxEntry(
        job_id=job.id, photo_id=photo.id, payload=encode_job(job).decode(), priority=priority
    )
    await api.state.catalog.insert_photo(photo, entry)
    return entry


async def _pending(api: Api) -> list[str]:
    return [e.job_id for e in await api.state.catalog.outbox_pending(older_than_s=0)]


async def test_outbox_relay_enqueues_exactly_once(api: Api) -> None:
    state = api.state
    entry = await _outbox_entry(api, priority=3)
    assert await state.queue.get_job(entry.job_id) is None

    assert await relay_once(state.photos, min_age_s=0) == 1
    info = await state.queue.get_job(entry.job_id)
    assert info is not None and info.state is JobState.WAITING
    assert info.payload == entry.payload.encode() and info.priority == 3
    assert await _pending(api) == []
    assert await relay_once(state.photos, min_age_s=0) == 0

    # Two api processes relaying the same entries at once still make one job each.
    more = [await _outbox_entry(api) for _ in range(3)]
    await asyncio.gather(*(relay_once(state.photos, min_age_s=0) for _ in "ab"))
    for other in more:
        assert await state.queue.get_job(other.job_id) is not None
    assert (await state.queue.counts())["waiting"] == 4
    assert await _pending(api) == []


async def test_outbox_relay_keeps_an_entry_whose_enqueue_failed(api: Api) -> None:
    state = api.state
    entry = await _outbox_entry(api)
    # Redis down: nothing listens on the port.
    down = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    try:
        unqueued = JobQueue(down, state.queue.options)
        photos = PhotoLifecycle(
            api.settings, state.catalog, unqueued, state.events,
            signing_secret=state.signing_secret,
        )  # fmt: skip
        moved = await relay_once(photos, min_age_s=0)
    finally:
        await down.aclose()
    assert moved == 0
    assert await _pending(api) == [entry.job_id]
    assert await state.queue.get_job(entry.job_id) is None
    # Redis back: the next round moves it.
    assert await relay_once(state.photos, min_age_s=0) == 1
    assert await state.queue.get_job(entry.job_id) is not None
    assert await _pending(api) == []


async def test_the_relay_leaves_the_entry_of_an_upload_that_queued_its_own_job(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upload queued its job; its entry waits (OUTBOX_FORGET_S) to be deleted. Relayed
    # meanwhile, a job that had already run and been removed would run again.
    monkeypatch.setattr(lifecycle, "OUTBOX_FORGET_S", 60.0)
    resp = await api.upload(fake_jpeg())
    assert resp.status == 201
    assert len(await _pending(api)) == 1
    assert await relay_once(api.state.photos, min_age_s=60) == 0


async def test_an_uploads_entry_is_deleted_soon_when_no_upload_follows(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No later upload's transaction takes it: its own timer must, well before the relay
    # (entries 2 s old) takes it for stranded and queues its job a second time.
    monkeypatch.setattr(lifecycle, "OUTBOX_FORGET_S", 0.05)
    resp = await api.upload(fake_jpeg())
    assert resp.status == 201
    for _ in range(50):  # about a second
        if not await _pending(api):
            break
        await asyncio.sleep(0.02)
    assert await _pending(api) == []


async def test_an_upload_whose_transaction_rolls_back_leaves_no_outbox_entry(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is written in the photo row's transaction: refused there (the client had
    these bytes already, or its quota ran out at the final check), the upload records no
    row and no entry. An entry that escaped the rollback would be relayed 2 s later as a
    job for a photo that does not exist, and charged against nothing."""
    monkeypatch.setattr(lifecycle, "OUTBOX_FORGET_S", 60.0)  # the first's entry stays put
    data = fake_jpeg()
    first = await api.upload(data)
    assert first.status == 201
    kept = await _pending(api)
    assert len(kept) == 1
    # The same bytes again: found only inside the insert's transaction (no checksum
    # header for the api to look it up by first), which rolls back.
    again = await api.upload(data)
    assert again.status == 200 and (await again.json())["duplicate"] is True
    assert await _pending(api) == kept
    assert await api.photo_count() == 1
    # Over the quota at the final check (the client's stored bytes are past 1).
    client = await api.state.catalog.find_client_by_name("alice")
    assert client is not None
    over = msgspec.structs.replace(_row(api), client_id=client.id, sha256="ab" * 32)
    with pytest.raises(QuotaExceeded):
        await api.state.photos.accept(over, quota_bytes=1)
    assert await _pending(api) == kept
    assert await api.state.catalog.get_photo(over.id) is None


async def test_orphan_blobs_are_swept_after_grace(api: Api, corpus: Path) -> None:
    state = api.state
    resp = await api.upload((corpus / "real/Landscape_1.jpg").read_bytes())
    kept = (await resp.json())["photo_id"]
    orphan = str(uuid.uuid4())
    await state.blobs.put_bytes(f"originals/{orphan}", b"x", content_type="image/jpeg")
    await state.blobs.put_bytes(
        f"derivatives/{orphan}/thumbnail.webp", b"y", content_type="image/webp"
    )

    assert await sweep_orphan_blobs(state.catalog, state.blobs, grace_s=3600) == 0
    assert await sweep_orphan_blobs(state.catalog, state.blobs, grace_s=EVERY_BLOB) == 2
    assert await state.blobs.stat(f"originals/{orphan}") is None
    assert await state.blobs.stat(f"originals/{kept}") is not None


async def test_an_orphan_whose_name_is_not_utf8_is_swept_with_the_others(api: Api) -> None:
    """A file under originals/ named in bytes that are not UTF-8 (copied in by hand, another
    tool's) is listed with a surrogate no catalog driver can encode: the sweep's lookup
    failed on it every round, on SQLite and PostgreSQL alike, and no orphan was swept."""
    state = api.state
    orphan = str(uuid.uuid4())
    await state.blobs.put_bytes(f"originals/{orphan}", b"x", content_type="image/jpeg")
    root = Path(api.settings.effective_blob_url.removeprefix("file://"))
    (root / "originals").joinpath(os.fsdecode(b"stray-\xff.jpg")).write_bytes(b"y")
    assert await sweep_orphan_blobs(state.catalog, state.blobs, grace_s=EVERY_BLOB) == 2
    assert api.blob_files() == []


async def _put_unnamable(api: Api, key: str) -> None:
    """A blob under ``key``, which the store's own calls refuse, as another tool leaves it."""
    blobs = api.state.blobs
    if isinstance(blobs, S3BlobStore):
        await blobs.ensure_bucket()
        await blobs.client.put_object(Bucket=blobs.bucket, Key=blobs.prefix + key, Body=b"z")
        return
    path = Path(api.settings.effective_blob_url.removeprefix("file://")) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"z")


async def test_an_orphan_whose_key_the_store_refuses_is_stepped_over_once(
    any_store_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A key S3 holds but no store call may name (a NUL; on the files store, whose names
    hold no NUL, a backslash) made the blob layer refuse its delete: the sweep stopped
    there, every round, and the orphans after it were never swept."""
    api = any_store_api
    state = api.state
    bad = "originals/x\x00y" if isinstance(state.blobs, S3BlobStore) else "originals/x\\y"
    orphans = [str(uuid.uuid4()) for _ in range(2)]
    for orphan in orphans:
        await state.blobs.put_bytes(f"originals/{orphan}", b"x", content_type="image/jpeg")
    await _put_unnamable(api, bad)
    with caplog.at_level(logging.WARNING, "filmstrip.api.reconciler"):
        assert await sweep_orphan_blobs(state.catalog, state.blobs, grace_s=EVERY_BLOB) == 2
    assert await api.blob_keys("originals/") == [bad]
    told = [r for r in caplog.records if repr(bad) in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.WARNING


async def test_the_orphan_sweep_goes_by_the_catalogs_clock(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweeping host whose clock runs two hours fast must not take a blob written a
    moment ago (its row may be on its way) for one past an hour's grace."""
    state = api.state
    orphan = str(uuid.uuid4())
    await state.blobs.put_bytes(f"originals/{orphan}", b"x", content_type="image/jpeg")
    fast = time.time() + 7200
    monkeypatch.setattr(time, "time", lambda: fast)
    assert await sweep_orphan_blobs(state.catalog, state.blobs, grace_s=3600) == 0
    monkeypatch.undo()
    assert await state.blobs.stat(f"originals/{orphan}") is not None


async def test_orphan_sweep_checks_the_catalog_in_bounded_batches(
    api: Api, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = api.state
    kept = [
        (await (await api.upload((corpus / f"real/Landscape_{i}.jpg").read_bytes())).json())[
            "photo_id"
        ]
        for i in (1, 2, 3)
    ]
    orphans = [str(uuid.uuid4()) for _ in range(5)]
    for orphan in orphans:
        await state.blobs.put_bytes(f"originals/{orphan}", b"x", content_type="image/jpeg")
        await state.blobs.put_bytes(
            f"derivatives/{orphan}/preview.jpg", b"y", content_type="image/jpeg"
        )
    asked: list[int] = []
    present = state.catalog.photo_ids_present

    async def counting(ids: list[str]) -> set[str]:
        asked.append(len(ids))
        return await present(ids)

    monkeypatch.setattr(state.catalog, "photo_ids_present", counting)
    assert await sweep_orphan_blobs(state.catalog, state.blobs, grace_s=EVERY_BLOB, batch=2) == 10
    # Each photo is asked about once per prefix it has blobs under (the kept ones have
    # no derivatives: no worker runs here), never more than a batch at a time.
    assert max(asked) <= 2 and sum(asked) == len(kept) + 2 * len(orphans)
    for orphan in orphans:
        assert await state.blobs.stat(f"originals/{orphan}") is None
        assert await state.blobs.stat(f"derivatives/{orphan}/preview.jpg") is None
    for photo_id in kept:
        assert await state.blobs.stat(f"originals/{photo_id}") is not None


@pytest.mark.parametrize("status", [PhotoStatus.QUEUED, PhotoStatus.PROCESSING])
async def test_stuck_photo_without_a_job_is_requeued(api: Api, status: PhotoStatus) -> None:
    state = api.state
    stuck = _row(api, status=status)
    fresh = _row(api, status=status)
    await state.catalog.insert_photo(stuck, None)
    await state.catalog.insert_photo(fresh, None)
    await _age(api, stuck)
    n = await requeue_stuck(state.photos, older_than_s=60)
    assert n == 1
    info = await state.queue.get_job(stuck.job_id)
    assert info is not None and info.state is JobState.WAITING
    row = await state.catalog.get_photo(stuck.id)
    assert row is not None and row.status == PhotoStatus.QUEUED
    assert await state.queue.get_job(fresh.job_id) is None
    # A second round finds the job and leaves it alone.
    n = await requeue_stuck(state.photos, older_than_s=0)
    assert n == 1  # only `fresh` (now old enough) lacked a job
    assert (await state.queue.counts())["waiting"] == 2


async def test_a_requeued_photo_announces_its_outcome_over_an_earlier_ones_once_key(
    api: Api,
) -> None:
    # Redis restored from an older snapshot can bring back the once-key of an outcome
    # before a retry while losing the retry's job: the job the reconciler gives the photo
    # must still be heard ending.
    state = api.state
    photo = _row(api, status=PhotoStatus.QUEUED)
    await state.catalog.insert_photo(photo, None)
    await _age(api, photo)
    once = keys.event_once(photo.client_id, completion_once_key(photo.id))
    await state.redis.set(once, "1700000000000-0")
    assert await requeue_stuck(state.photos, older_than_s=60) == 1
    job = ready_job(api.settings, photo)
    assert await state.photos.fail(job, code="corrupt", category="DATA", message="bad")
    stream = await state.redis.xrange(keys.client_events(photo.client_id))
    assert [orjson.loads(fields[b"e"])["type"] for _, fields in stream] == [PHOTO_FAILED]


async def test_a_photo_whose_job_was_dead_lettered_unmarked_is_marked_failed(api: Api) -> None:
    """The worker's failure hook can be lost (the worker died after the job was settled,
    or the catalog refused the write): the photo would sit in ``processing`` forever."""
    state = api.state
    photo = _row(api, status=PhotoStatus.PROCESSING)
    await state.catalog.insert_photo(photo, None)
    await _age(api, photo)
    await state.photos.enqueue(ready_job(api.settings, photo))
    (taken,) = (await state.queue.step("gone-worker", 1, [])).jobs
    failure = [Settlement(taken, Outcome.FAIL, error=DataError("bad", code="corrupt_image"))]
    await state.queue.step("gone-worker", 0, failure)

    repaired = await requeue_stuck(state.photos, older_than_s=60)
    assert repaired == 1
    row = await state.catalog.get_photo(photo.id)
    assert row is not None and row.status == PhotoStatus.FAILED
    assert (row.processing_error, row.error_category) == ("bad", "DATA")
    events = await state.redis.xrange(keys.client_events(photo.client_id))
    sent = [orjson.loads(fields[b"e"]) for _, fields in events]
    assert [(e["type"], e["data"]["error"]["code"]) for e in sent] == [
        ("photo.processing.failed", "corrupt_image")
    ]
    # Settled: the next round has nothing to do, and the job was not queued again.
    assert await requeue_stuck(state.photos, older_than_s=0) == 0
    assert (await state.queue.counts())["waiting"] == 0


async def test_a_photo_whose_job_waits_out_a_retry_is_left_alone(api: Api) -> None:
    """A job that failed an attempt and waits for its next one carries that attempt's
    error too: only a dead-lettered job's photo is marked failed."""
    state = api.state
    photo = _row(api, status=PhotoStatus.PROCESSING)
    await state.catalog.insert_photo(photo, None)
    await _age(api, photo)
    await state.photos.enqueue(ready_job(api.settings, photo))
    (taken,) = (await state.queue.step("worker", 1, [])).jobs
    blip = TemporaryError("Redis blinked", code="io_error")
    await state.queue.step("worker", 0, [Settlement(taken, Outcome.RETRY, error=blip)])
    info = await state.queue.get_job(photo.job_id)
    assert info is not None and info.state is JobState.DELAYED and info.error is not None

    assert await requeue_stuck(state.photos, older_than_s=60) == 0
    row = await state.catalog.get_photo(photo.id)
    assert row is not None and row.status == PhotoStatus.PROCESSING
    assert await state.redis.xrange(keys.client_events(photo.client_id)) == []


async def test_a_photo_deleted_before_its_failure_is_recorded_is_not_announced(
    api: Api,
) -> None:
    # The reconciler (or a worker's failure hook) marks a photo failed that its client
    # deleted meanwhile: nothing is recorded, and the client hears of no failure.
    state = api.state
    photo = _row(api, status=PhotoStatus.PROCESSING)
    await state.catalog.insert_photo(photo, None)
    assert await state.catalog.delete_photo(photo.id, photo.client_id)
    job = ready_job(api.settings, photo)
    assert not await state.photos.fail(job, code="corrupt", category="DATA", message="bad")
    assert await state.redis.xrange(keys.client_events(photo.client_id)) == []


async def _failed_ago(api: Api, seconds: float) -> PhotoRecord:
    """A photo marked failed ``seconds`` ago (by the catalog's clock) whose failure event
    never went out: its worker died between the catalog write and the announcement."""
    state = api.state
    photo = _row(api, status=PhotoStatus.PROCESSING)
    await state.catalog.insert_photo(photo, None)
    assert await state.catalog.fail_photo(photo.id, error="bad", category="DATA", code="corrupt")
    stamp = shift_time(await state.catalog._now(), -seconds)
    await state.catalog._execute("UPDATE photos SET updated_at = ? WHERE id = ?", (stamp, photo.id))
    return photo


async def _failures_sent(api: Api, photo: PhotoRecord) -> list[str]:
    stream = await api.state.redis.xrange(keys.client_events(photo.client_id))
    sent = [orjson.loads(fields[b"e"]) for _, fields in stream]
    return [e["data"]["error"]["code"] for e in sent if e["photo_id"] == photo.id]


async def test_a_failure_whose_event_never_went_out_is_announced_by_the_reconciler(
    api: Api,
) -> None:
    """The worker marks a photo failed after its job is settled (dead-lettered), then
    announces it: a worker that dies in between leaves a failed row nobody announces."""
    state = api.state
    stuck_s = api.settings.api.stuck_after_s
    lost = await _failed_ago(api, stuck_s + 5)
    fresh = await _failed_ago(api, 0)  # its worker may still be announcing it
    ancient = await _failed_ago(api, api.settings.bus.replay_age_s + 5)  # past replay
    told = await _failed_ago(api, stuck_s + 5)
    assert await state.photos.fail(
        ready_job(api.settings, told), code="corrupt", category="DATA", message="bad"
    )
    assert await reconcile_once(state.photos, state.redis, state.blobs)
    assert await _failures_sent(api, lost) == ["corrupt"]
    assert await _failures_sent(api, fresh) == []
    assert await _failures_sent(api, ancient) == []
    assert await _failures_sent(api, told) == ["corrupt"]  # once, not again
    # Announced under the once-key: a later round sends nothing more.
    await state.redis.delete(keys.reconciler_round_gate())
    assert await reconcile_once(state.photos, state.redis, state.blobs)
    assert await _failures_sent(api, lost) == ["corrupt"]


async def test_a_failure_at_the_edge_of_the_replay_window_is_not_announced(api: Api) -> None:
    """A failure's once-key lives as long as its event is kept for replay, by Redis's
    clock: near the end of the window it may be gone already though its event went out
    (the database's clock may run behind), and announcing it would tell the client twice."""
    edge = await _failed_ago(api, api.settings.bus.replay_age_s - 30)
    inside = await _failed_ago(api, api.settings.bus.replay_age_s - 300)
    older_than_s = api.settings.api.stuck_after_s
    assert await announce_lost_failures(api.state.photos, older_than_s=older_than_s) == 1
    assert await _failures_sent(api, edge) == []
    assert await _failures_sent(api, inside) == ["corrupt"]
    # Told now: the next round neither sends it nor counts (and logs) it again.
    assert await announce_lost_failures(api.state.photos, older_than_s=older_than_s) == 0


async def test_completed_photos_missing_their_follow_up_get_it_again(api: Api) -> None:
    """Redis may lose the last second of writes (appendonly everysec): a follow-up job
    queued just before the crash is gone, and the photo would never get its copy."""
    state = api.state
    lost, done, failed, fresh = (_row(api, status=PhotoStatus.COMPLETED) for _ in range(4))
    for photo in (lost, done, failed, fresh):
        await state.catalog.insert_photo(photo, None)
        # As the ready job leaves it: completed, its follow-up owed.
        await state.catalog.complete_photo(
            photo.id,
            metadata={"width": 10, "exif": {"model": '"optimization": not a key'}},
            derivatives=[],
            taken_at=None,
            owed=["optimization"],
        )
    # Two follow-ups reported (a result, a failure); the one for ``lost`` was lost.
    for photo, result in ((done, {"kept": False}), (failed, {"failed": True})):
        await state.catalog.add_deferred_results(
            photo.id, metadata={"optimization": result}, derivatives=[], replaces=()
        )
    # Age the three rows the reconciler may look at.
    await _age(api, lost, done, failed)

    n = await requeue_follow_ups(state.photos, older_than_s=60)
    assert n == 1
    info = await state.queue.get_job(deferred_job_id_for(lost.id))
    assert info is not None and info.priority == api.settings.jobs.deferred_priority
    for other in (done, failed, fresh):
        assert await state.queue.get_job(deferred_job_id_for(other.id)) is None
    # The next round finds the job and leaves it alone.
    n = await requeue_follow_ups(state.photos, older_than_s=60)
    assert n == 0


async def test_the_orphan_sweep_runs_once_per_interval_across_processes(api: Api) -> None:
    """Each sweep lists the whole store, so two api processes' reconcilers share one gate,
    set once a sweep finished."""
    redis = api.state.redis
    await redis.delete(keys.orphan_sweep_gate())
    assert await orphan_sweep_due(redis)
    assert await orphan_sweep_due(redis)  # nothing recorded until a sweep finished
    await orphan_sweep_done(redis, 0.3)
    assert not await orphan_sweep_due(redis)  # the other process, this round
    await asyncio.sleep(0.4)
    assert await orphan_sweep_due(redis)


async def test_a_failed_uploads_cleanup_keeps_the_original_of_a_recorded_photo(
    api: Api,
) -> None:
    # The cleanup after any upload failure asks the catalog: a blob whose photo row was
    # committed stays, one without a row goes. (The cancelled upload below cannot reach the
    # question itself: its catalog is closing, so it keeps the blob for the sweep.)
    resp = await api.upload(fake_jpeg())
    assert resp.status == 201
    photo = await api.state.catalog.get_photo((await resp.json())["photo_id"])
    assert photo is not None
    await api.state.blobs.put_bytes("originals/never-recorded", b"x", content_type="image/jpeg")
    await discard_unrecorded(api.state, photo.id, photo.blob_key)
    await discard_unrecorded(api.state, "never-recorded", "originals/never-recorded")
    assert await api.blob_keys("originals/") == [photo.blob_key]


async def test_an_upload_cancelled_after_its_row_is_committed_keeps_its_original(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    # The api stops while an upload waits on Redis right after its row and outbox entry
    # were committed: its handler is cancelled there. The photo is recorded (the outbox
    # relay will queue its job), so its original must stay. It used to be deleted.
    settings = api_settings(tmp_path, redis_server.url)
    runner, url = await start_api(settings, shutdown_timeout=0.5)
    _client, token = await issue_token(runner.app[STATE].catalog, "alice", admin=False)
    gate = asyncio.Event()
    boundary = "cancelled-after-commit"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + fake_jpeg()

    async def body() -> AsyncIterator[bytes]:
        yield head
        await gate.wait()  # the last bytes once Redis refuses writes
        yield f"\r\n--{boundary}--\r\n".encode()

    async def upload() -> None:
        async with aiohttp.ClientSession() as http:
            with contextlib.suppress(aiohttp.ClientError):
                await http.post(
                    f"{url}/v1/photos",
                    data=body(),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                    },
                )

    queue = runner.app[STATE].queue
    backlog = queue.backlog
    checked = asyncio.Event()

    async def observed_backlog(top_band: int) -> tuple[int, int]:
        try:
            return await backlog(top_band)
        finally:
            checked.set()

    queue.backlog = observed_backlog  # type: ignore[method-assign]
    uploading = asyncio.create_task(upload())
    catalog = catalog_for_url(settings.effective_database_url)
    await catalog.connect()
    try:
        # The queue's capacity check is the upload's last Redis call before its row (a
        # script, which a write pause holds): pause only once it has answered. Waiting for
        # the client's rate key alone paused it first now and then, and no row came.
        async with asyncio.timeout(5):
            await checked.wait()
        await redis.execute_command("CLIENT", "PAUSE", "10000", "WRITE")
        gate.set()
        for _ in range(100):
            rows = await catalog._fetchall("SELECT id, blob_key FROM photos")
            if rows:
                break
            await asyncio.sleep(0.05)
        assert rows, "the upload's row was never committed"
        await runner.cleanup()  # cancels the handler waiting on Redis after 0.5 s
        await redis.execute_command("CLIENT", "UNPAUSE")
        await uploading
        (photo_id, blob_key), *_ = rows
        assert await catalog.get_photo(photo_id) is not None
        root = Path(settings.effective_blob_url.removeprefix("file://"))
        assert (root / blob_key).is_file(), "the recorded photo lost its original"
        assert await catalog._fetchall("SELECT job_id FROM outbox") != []  # for the relay
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
        await catalog.close()
        await runner.cleanup()
