"""Queue administration (admin tokens) and a client retrying its own failed photo."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.blobs import open_blob_store
from filmstrip.embedded.redis_server import free_port
from filmstrip.errors import PUBLIC_MESSAGES, LogicError, TemporaryError
from filmstrip.photos import ready_job
from filmstrip.protocols.events import (
    PHOTO_COMPLETED,
    PHOTO_DEFERRED_COMPLETED,
    PHOTO_FAILED,
    PHOTO_PROCESSING_STARTED,
    STAGE_COMPLETED,
)
from filmstrip.protocols.jobs import PhotoProcessingJob
from filmstrip.queue import Consumer, Job
from filmstrip.redis_client import RedisClient
from filmstrip.services.api.reconciler import announce_lost_failures
from filmstrip.services.worker.processor import PhotoProcessor
from tests.api.conftest import Api, api_settings, running_api
from tests.api.factories import bearer, client_token, complete, fail, uploaded
from tests.support.settings import unreachable_s3

Q = "/v1/queues/photo-processing"
# A failure a retry may cure (a bug or a setting, fixed since).
_FIXABLE = LogicError("the thumbnail stage is misconfigured", code="stage_misconfigured")


async def _publisher(
    api: Api, job_id: str
) -> tuple[PhotoProcessingJob, Callable[[str, dict[str, Any]], Awaitable[None]]]:
    """Queued job ``job_id``, and a function that publishes an event of its photo as its
    worker would."""
    info = await api.state.queue.get_job(job_id)
    assert info is not None
    spec = msgspec.json.decode(info.payload, type=PhotoProcessingJob)

    async def publish(type_: str, data: dict[str, Any]) -> None:
        await api.state.events.publish(
            type_,
            photo_id=spec.photo_id,
            client_id=spec.context.client_id,
            trace_id=spec.context.trace_id,
            data=data,
        )

    return spec, publish


async def _json(resp: Any, status: int) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def test_overview_counts_and_stats(api: Api) -> None:
    admin = bearer(await client_token(api, "ops", admin=True))
    failed = await uploaded(api)
    await fail(api, failed)
    await uploaded(api)
    body = await _json(await api.http.get(f"{api.url}{Q}", headers=admin), 200)
    assert body["name"] == "photo-processing" and body["paused"] is False
    assert body["counts"] == {"waiting": 1, "active": 0, "delayed": 0, "completed": 0, "failed": 1}
    assert body["stats"]["last_1h"]["failed"] == 1
    assert body["stats"]["last_7d"]["total"] == 1


async def test_failed_jobs_page_retry_and_remove(api: Api) -> None:
    admin = bearer(await client_token(api, "ops", admin=True))
    first, second = await uploaded(api), None
    await fail(api, first)
    second = await uploaded(api)
    await fail(api, second)

    page = await _json(
        await api.http.get(f"{api.url}{Q}/jobs", params={"limit": "1"}, headers=admin), 200
    )
    assert page["next_offset"] == 1 and len(page["items"]) == 1
    job = page["items"][0]
    assert job["state"] == "failed"
    assert job["error"] == {"code": "corrupt", "category": "DATA", "message": "cannot decode"}
    rest = await _json(
        await api.http.get(
            f"{api.url}{Q}/jobs", params={"state": "failed", "offset": "1"}, headers=admin
        ),
        200,
    )
    assert rest["next_offset"] is None
    assert {job["photo_id"], rest["items"][0]["photo_id"]} == {first, second}

    retried = await _json(
        await api.http.post(f"{api.url}{Q}/jobs/photo:{first}/retry", headers=admin), 202
    )
    assert retried == {"photo_id": first, "job_id": f"photo:{first}", "status": "queued"}
    photo = await api.state.catalog.get_photo(first)
    assert photo is not None and photo.status == "queued" and photo.processing_error is None
    info = await api.state.queue.get_job(f"photo:{first}")
    assert info is not None and info.state.value == "waiting"
    again = await api.http.post(f"{api.url}{Q}/jobs/photo:{first}/retry", headers=admin)
    assert again.status == 404

    removed = await api.http.delete(f"{api.url}{Q}/jobs/photo:{second}", headers=admin)
    assert removed.status == 204
    assert await api.state.queue.get_job(f"photo:{second}") is None
    gone = await api.http.delete(f"{api.url}{Q}/jobs/photo:{second}", headers=admin)
    assert gone.status == 404


async def test_pause_and_resume(api: Api) -> None:
    admin = bearer(await client_token(api, "ops", admin=True))
    paused = await _json(await api.http.post(f"{api.url}{Q}/pause", headers=admin), 200)
    assert paused == {"paused": True} and await api.state.queue.is_paused()
    resumed = await _json(await api.http.post(f"{api.url}{Q}/resume", headers=admin), 200)
    assert resumed == {"paused": False} and not await api.state.queue.is_paused()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"state": "lost"}, "bad_state"),
        ({"offset": "-1"}, "bad_offset"),
        ({"offset": "x"}, "bad_offset"),
        ({"offset": "31240845591506879250432"}, "bad_offset"),  # found by schemathesis
        ({"limit": "500"}, "bad_limit"),
    ],
)
async def test_bad_job_queries_are_400(api: Api, query: dict[str, str], code: str) -> None:
    admin = bearer(await client_token(api, "ops", admin=True))
    resp = await api.http.get(f"{api.url}{Q}/jobs", params=query, headers=admin)
    assert (await _json(resp, 400))["error"]["code"] == code


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", Q),
        ("GET", f"{Q}/jobs"),
        ("GET", f"{Q}/jobs/photo:00000000-0000-0000-0000-000000000000"),
        ("POST", f"{Q}/jobs/photo:00000000-0000-0000-0000-000000000000/retry"),
        ("DELETE", f"{Q}/jobs/photo:00000000-0000-0000-0000-000000000000"),
        ("POST", f"{Q}/pause"),
        ("POST", f"{Q}/resume"),
    ],
)
async def test_queue_admin_needs_an_admin_token(api: Api, method: str, path: str) -> None:
    resp = await api.http.request(method, f"{api.url}{path}", headers=api.auth)
    assert (await _json(resp, 403))["error"]["code"] == "forbidden"
    assert not await api.state.queue.is_paused()


async def test_owner_retries_a_failed_photo(api: Api) -> None:
    photo_id = await uploaded(api)
    not_yet = await api.http.post(f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth)
    assert (await _json(not_yet, 409))["error"]["code"] == "not_failed"

    await fail(api, photo_id, _FIXABLE)
    resp = await api.http.post(f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth)
    body = await _json(resp, 202)
    assert body == {"photo_id": photo_id, "job_id": f"photo:{photo_id}", "status": "queued"}
    info = await api.state.queue.get_job(f"photo:{photo_id}")
    assert info is not None and info.state.value == "waiting"
    photo = await api.state.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "queued"


async def test_a_retried_photo_announces_its_new_outcome(api: Api) -> None:
    # A photo's outcome goes out once (by its once-key): a retry must reopen it, or the
    # client never hears how the retry ended.
    photo_id = await uploaded(api)
    await fail(api, photo_id, _FIXABLE)
    await _json(await api.http.post(f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth), 202)
    row = await api.state.catalog.get_photo(photo_id)
    assert row is not None and row.status == "queued"
    # The retried job fails again, as the worker's failure hook records it.
    job = ready_job(api.settings, row)
    assert await api.state.photos.fail(job, code="still", category="LOGIC", message="again")
    stream = await api.state.redis.xrange(keys.client_events(row.client_id))
    sent = [msgspec.json.decode(fields[b"e"])["type"] for _, fields in stream]
    assert sent.count(PHOTO_FAILED) == 2, sent


async def test_a_retry_the_queue_cannot_take_leaves_the_photo_failed(tmp_path: Path) -> None:
    # The row turns queued before the job is revived; left so when Redis refuses, the
    # photo would wait for a job in the failed set, which nothing ever repairs.
    with RedisServer(appendonly=True) as own:
        async with running_api(api_settings(tmp_path, own.url), "alice") as api:
            photo_id = await uploaded(api)
            await fail(api, photo_id, _FIXABLE)
            own.stop(kill=True)
            resp = await api.http.post(f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth)
            body = await resp.json()
            assert resp.status == 503 and body["error"]["code"] == "redis_unavailable", body
            # Not Redis's address nor the once-key's name: those are for the log.
            assert body["error"]["message"] == PUBLIC_MESSAGES["redis_unavailable"], body
            row = await api.state.catalog.get_photo(photo_id)
            assert row is not None and row.status == "failed"
            assert row.error_code == "stage_misconfigured"


async def test_a_retry_the_queue_refused_does_not_announce_the_failure_again(
    tmp_path: Path,
) -> None:
    """A retry reopens the photo's outcome (its once-key) before the queue step; when that
    step failed with the once-key already gone (here Redis full: the reset goes through,
    the enqueue of a job whose dead letter an admin removed does not), the row went back
    to failed without it, and the reconciler, seeing a failure nobody was told of,
    announced it a second time: two photo.processing.failed for one failure."""
    with RedisServer(appendonly=True) as own:
        async with running_api(api_settings(tmp_path, own.url), "alice") as api:
            photo_id = await uploaded(api)
            await fail(api, photo_id, _FIXABLE)
            assert await api.state.queue.remove_failed(f"photo:{photo_id}")
            redis = api.state.redis
            await redis.config_set("maxmemory-policy", "noeviction")
            await redis.config_set("maxmemory", "1")
            try:
                resp = await api.http.post(
                    f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth
                )
            finally:
                await redis.config_set("maxmemory", "0")
            assert resp.status == 503, await resp.text()
            row = await api.state.catalog.get_photo(photo_id)
            assert row is not None and row.status == "failed"
            await announce_lost_failures(api.state.photos, older_than_s=-1)
            stream = await redis.xrange(keys.client_events(row.client_id))
            sent = [msgspec.json.decode(fields[b"e"])["type"] for _, fields in stream]
            assert sent.count(PHOTO_FAILED) == 1, sent


async def test_a_job_revived_by_a_retry_that_seemed_to_fail_announces_its_outcome(
    api: Api,
) -> None:
    """A retry whose queue step went through but whose reply was lost puts the photo back
    to failed with its once-key: the revived job's run must still be heard ending."""
    photo_id = await uploaded(api)
    await fail(api, photo_id, _FIXABLE)
    assert await api.state.queue.retry_failed(f"photo:{photo_id}")  # the lost reply's work
    row = await api.state.catalog.get_photo(photo_id)
    assert row is not None and row.status == "failed"
    job = ready_job(api.settings, row)
    assert await api.state.photos.start(job, 1) is not None
    assert await api.state.photos.fail(job, code="still", category="LOGIC", message="again")
    stream = await api.state.redis.xrange(keys.client_events(row.client_id))
    sent = [msgspec.json.decode(fields[b"e"])["type"] for _, fields in stream]
    assert sent.count(PHOTO_FAILED) == 2, sent


async def test_retry_after_the_dead_letter_was_removed_enqueues_afresh(api: Api) -> None:
    photo_id = await uploaded(api)
    await fail(api, photo_id, _FIXABLE)
    assert await api.state.queue.remove_failed(f"photo:{photo_id}")
    resp = await api.http.post(f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth)
    await _json(resp, 202)
    info = await api.state.queue.get_job(f"photo:{photo_id}")
    assert info is not None and info.state.value == "waiting"


async def test_completed_photo_is_not_retried(api: Api) -> None:
    photo_id = await uploaded(api)
    await complete(api, photo_id)
    resp = await api.http.post(f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth)
    await _json(resp, 409)


async def test_a_failed_photo_says_what_its_error_is_and_refuses_a_useless_retry(
    api: Api,
) -> None:
    failed, done = await uploaded(api), await uploaded(api)
    await fail(api, failed)  # a corrupt file: DATA
    await complete(api, done)
    photo = await _json(await api.http.get(f"{api.url}/v1/photos/{failed}", headers=api.auth), 200)
    error = {"code": "corrupt", "category": "DATA", "message": "cannot decode", "retryable": False}
    assert photo["error"] == error and photo["error_category"] == "DATA"
    listing = await _json(await api.http.get(f"{api.url}/v1/photos", headers=api.auth), 200)
    assert {p["photo_id"]: p["error"] for p in listing["items"]} == {failed: error, done: None}
    photo = await _json(await api.http.get(f"{api.url}/v1/photos/{done}", headers=api.auth), 200)
    assert photo["error"] is None and photo["error_category"] is None
    # The failure event says the same.
    row = await api.state.catalog.get_photo(failed)
    assert row is not None
    stream = await api.state.redis.xrange(keys.client_events(row.client_id))
    sent = [msgspec.json.decode(fields[b"e"]) for _, fields in stream]
    assert [e["data"]["error"] for e in sent if e["type"] == PHOTO_FAILED] == [error]

    refused = await api.http.post(f"{api.url}/v1/photos/{failed}/retry", headers=api.auth)
    body = await _json(refused, 409)
    assert body["error"]["code"] == "not_retryable" and "corrupt" in body["error"]["message"]
    row = await api.state.catalog.get_photo(failed)
    assert row is not None and row.status == "failed"
    info = await api.state.queue.get_job(f"photo:{failed}")
    assert info is not None and info.state.value == "failed"


async def _run_once(api: Api, handler: Any) -> None:
    """Run a real consumer until it has settled one delivery of the only waiting job."""
    settled = asyncio.Event()

    async def run(job: Job) -> None:
        try:
            await handler(job)
        finally:
            settled.set()

    consumer = Consumer(api.state.queue, run, concurrency=1)
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(settled.wait(), 10)
    finally:
        await consumer.stop()
        await task


async def test_job_detail_tells_each_run_with_its_error_and_stage_times(
    tmp_path: Path, redis_url: str, redis: RedisClient
) -> None:
    settings = api_settings(tmp_path, redis_url, job_backoff_ms="100")
    async with running_api(settings, "alice") as api:
        admin = bearer(await client_token(api, "ops", admin=True))
        photo_id = await uploaded(api)
        job_id = f"photo:{photo_id}"
        spec, publish = await _publisher(api, job_id)

        async def flaky(job: Job) -> None:
            await publish(PHOTO_PROCESSING_STARTED, {"attempt": job.attempt})
            await publish(STAGE_COMPLETED, {"stage": "validation", "ms": 12.5})
            raise TemporaryError("the blob store timed out", code="io_error")

        await _run_once(api, flaky)
        # A job put off on purpose is delayed too, but it has not failed.
        await api.state.queue.add("later", b"{}", delay_ms=60_000)
        # Failed once, waiting out its backoff: a retrying job, not a dead-lettered one.
        for state, listed in (("retrying", True), ("delayed", True), ("failed", False)):
            page = await _json(
                await api.http.get(f"{api.url}{Q}/jobs", params={"state": state}, headers=admin),
                200,
            )
            assert (job_id in [j["job_id"] for j in page["items"]]) is listed, state
            assert ("later" in [j["job_id"] for j in page["items"]]) is (state == "delayed")
        detail = await _json(await api.http.get(f"{api.url}{Q}/jobs/{job_id}", headers=admin), 200)
        [run] = detail["runs"]
        assert run["outcome"] == "failed" and run["attempt"] == 1
        assert run["error"] == {
            "code": "io_error",
            "category": "TEMPORARY",
            "message": "the blob store timed out",
        }
        assert [s["stage"] for s in run["stages"]] == ["validation"]

        async def works(job: Job) -> None:
            await publish(PHOTO_PROCESSING_STARTED, {"attempt": job.attempt})
            for stage, ms in (("validation", 10.0), ("metadata", 20.0), ("thumbnails", 30.0)):
                await publish(STAGE_COMPLETED, {"stage": stage, "ms": ms})
            await publish(PHOTO_COMPLETED, {"status": "completed"})

        await asyncio.sleep(0.15)  # the backoff
        await _run_once(api, works)
        # Its follow-up job makes the optimised copy: that run is the follow-up's, not this
        # job's third.
        await publish(STAGE_COMPLETED, {"stage": "optimization", "ms": 80.0})
        await publish(PHOTO_DEFERRED_COMPLETED, {})
        detail = await _json(await api.http.get(f"{api.url}{Q}/jobs/{job_id}", headers=admin), 200)
        assert detail["job"]["state"] == "completed" and detail["job"]["attempts_made"] == 2
        assert detail["job"]["trace_id"] == spec.context.trace_id
        assert detail["payload"]["photo_id"] == photo_id
        assert detail["payload"]["context"]["client_id"] == spec.context.client_id
        assert detail["history_complete"] is True  # the upload's event is still there
        first, second = detail["runs"]
        assert first["outcome"] == "failed" and first["error"]["code"] == "io_error"
        assert second["outcome"] == "completed" and second["attempt"] == 2
        assert [(s["stage"], s["ms"]) for s in second["stages"]] == [
            ("validation", 10.0),
            ("metadata", 20.0),
            ("thumbnails", 30.0),
        ]
        assert second["started_at_ms"] <= second["stages"][0]["at_ms"] <= second["finished_at_ms"]
        assert detail["photo"]["photo_id"] == photo_id and detail["photo"]["status"] == "queued"
        retrying = await _json(
            await api.http.get(f"{api.url}{Q}/jobs", params={"state": "retrying"}, headers=admin),
            200,
        )
        assert retrying["items"] == []

        missing = await api.http.get(f"{api.url}{Q}/jobs/photo:nope", headers=admin)
        assert (await _json(missing, 404))["error"]["code"] == "job_not_found"
        refused = await api.http.get(f"{api.url}{Q}/jobs/{job_id}", headers=api.auth)
        assert refused.status == 403


async def test_a_retried_job_keeps_the_error_of_its_earlier_run(api: Api) -> None:
    # The photo.failed event tells the client "internal server error" only: the job's own
    # record is where the operator reads why the run before the retry failed.
    admin = bearer(await client_token(api, "ops", admin=True))
    photo_id = await uploaded(api)
    job_id = f"photo:{photo_id}"
    _, publish = await _publisher(api, job_id)

    async def works(job: Job) -> None:
        await publish(PHOTO_PROCESSING_STARTED, {"attempt": job.attempt})
        await publish(PHOTO_COMPLETED, {"status": "completed"})

    await publish(PHOTO_PROCESSING_STARTED, {"attempt": 1})
    await fail(api, photo_id, _FIXABLE)
    await _json(await api.http.post(f"{api.url}{Q}/jobs/{job_id}/retry", headers=admin), 202)
    why = {
        "code": "stage_misconfigured",
        "category": "LOGIC",
        "message": "the thumbnail stage is misconfigured",
    }
    detail = await _json(await api.http.get(f"{api.url}{Q}/jobs/{job_id}", headers=admin), 200)
    [before] = detail["runs"]
    assert before["outcome"] == "failed" and before["error"] == why
    await _run_once(api, works)
    detail = await _json(await api.http.get(f"{api.url}{Q}/jobs/{job_id}", headers=admin), 200)
    before, retry = detail["runs"]
    assert before["outcome"] == "failed" and before["error"] == why
    assert retry["outcome"] == "completed" and retry["error"] is None


async def test_a_storage_outage_tells_the_client_no_address_and_the_admin_all_of_it(
    tmp_path: Path, redis_url: str, redis: RedisClient, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings(tmp_path, redis_url, job_backoff_ms="50")
    async with running_api(settings, "alice") as api:
        admin = bearer(await client_token(api, "ops", admin=True))
        photo_id = await uploaded(api)
        # The worker's S3 is down: nothing listens at its endpoint.
        port = free_port()
        blobs = await open_blob_store(unreachable_s3(settings, port))
        processor = PhotoProcessor(settings, photos=api.state.photos, blobs=blobs)
        failed = asyncio.Event()

        async def on_failed(job: Job, error: Any) -> None:
            await processor.on_failed(job, error)
            failed.set()

        consumer = Consumer(api.state.queue, processor.handle, on_failed=on_failed)
        task = asyncio.create_task(consumer.run())
        try:
            with caplog.at_level(logging.WARNING, "filmstrip.worker"):
                await asyncio.wait_for(failed.wait(), 60)
        finally:
            await consumer.stop()
            await task
            await blobs.close()

        address = f"127.0.0.1:{port}"
        public = {
            "code": "blob_store_unavailable",
            "category": "TEMPORARY",
            "message": PUBLIC_MESSAGES["blob_store_unavailable"],
            "retryable": True,
        }
        resp = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
        assert address not in await resp.text()
        assert (await _json(resp, 200))["error"] == public
        row = await api.state.catalog.get_photo(photo_id)
        assert row is not None
        stream = await api.state.redis.xrange(keys.client_events(row.client_id))
        sent = [msgspec.json.decode(fields[b"e"]) for _, fields in stream]
        [event] = [e for e in sent if e["type"] == PHOTO_FAILED]
        assert event["data"]["error"] == public
        # The operator keeps the detail: the log line, the job's record and its last run.
        [logged] = [r for r in caplog.records if r.getMessage() == "photo failed"]
        assert address in getattr(logged, "error", "")
        job_id = f"photo:{photo_id}"
        detail = await _json(await api.http.get(f"{api.url}{Q}/jobs/{job_id}", headers=admin), 200)
        assert detail["job"]["state"] == "failed" and detail["job"]["attempts_made"] == 3
        assert address in detail["job"]["error"]["message"]
        assert address in detail["runs"][-1]["error"]["message"]


async def test_a_runs_times_are_when_its_events_happened_and_a_remake_is_not_its_run(
    api: Api,
) -> None:
    """The worker holds a fast photo's started and stage events and publishes them with its
    completion in one call: the run still spans its stages (not 0 ms). A remake of a damaged
    derivative later runs a stage of this job's as a job of its own: not a run of this job
    (it had no attempt and began after the job ended: a negative time)."""
    admin = bearer(await client_token(api, "ops", admin=True))
    photo_id = await uploaded(api)
    job_id = f"photo:{photo_id}"
    spec, publish = await _publisher(api, job_id)
    photos = api.state.photos

    async def works(job: Job) -> None:
        await photos.notify(spec, PHOTO_PROCESSING_STARTED, {"attempt": job.attempt}, hold=True)
        for stage in ("validation", "metadata", "thumbnails"):
            await asyncio.sleep(0.015)
            await photos.notify(spec, STAGE_COMPLETED, {"stage": stage, "ms": 15.0}, hold=True)
        await photos.notify(spec, PHOTO_COMPLETED, {"status": "completed"})  # sends them all

    await _run_once(api, works)
    # Remakes at once (within the clocks' allowance) and later than it.
    for wait_s in (0.0, 1.2):
        await asyncio.sleep(wait_s)
        await publish(STAGE_COMPLETED, {"stage": "thumbnails", "ms": 12.0})
        await publish(PHOTO_DEFERRED_COMPLETED, {})

    detail = await _json(await api.http.get(f"{api.url}{Q}/jobs/{job_id}", headers=admin), 200)
    [run] = detail["runs"]
    assert run["outcome"] == "completed" and run["attempt"] == 1
    assert [s["stage"] for s in run["stages"]] == ["validation", "metadata", "thumbnails"]
    took = run["finished_at_ms"] - run["started_at_ms"]
    assert 40 <= took < 1000, run
    stamps = [run["started_at_ms"], *(s["at_ms"] for s in run["stages"]), run["finished_at_ms"]]
    assert stamps == sorted(stamps) and len(set(stamps[:-1])) == 4, run
