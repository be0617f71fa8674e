"""``GET /v1/dashboard`` and the interim listing / queue admin endpoints the pages use."""

from __future__ import annotations

import asyncio

from filmstrip import keys
from filmstrip.metrics.stage_stats import StageTimingsBuffer
from tests.api.factories import complete
from tests.web.conftest import WebApi

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


async def test_dashboard_needs_an_admin_token(api: WebApi) -> None:
    assert (await api.http.get(f"{api.url}/v1/dashboard")).status == 401
    assert (await api.http.get(f"{api.url}/v1/dashboard", headers=api.auth)).status == 403


async def _early_in_a_minute(api: WebApi) -> int:
    """Redis's time (the dashboard's clock) in ms, at least 10 s before its minute ends.

    What the test files under this minute must still be this minute when the dashboard
    reads it; on a loaded machine the upload and the request in between can take a good
    part of a second, and a minute that ended meanwhile moved every figure one bar left.
    """
    now_s, micro = await api.state.redis.time()
    if now_s % 60 >= 50:
        await asyncio.sleep(60 - now_s % 60 - micro / 1e6 + 0.05)
        now_s, _ = await api.state.redis.time()
    return int(now_s) * 1000


async def test_dashboard_reports_counts_throughput_stages_and_bus_processes(api: WebApi) -> None:
    redis = api.state.redis
    now_ms = await _early_in_a_minute(api)
    minute = now_ms // 60_000
    prefix = keys.queue_stats_prefix(api.settings.queue.name)
    await redis.hset(f"{prefix}m:{minute}", mapping={"c": 7, "f": 2, "t": 900})
    await redis.hset(f"{prefix}m:{minute - 59}", mapping={"c": 1})
    await redis.hset(f"{prefix}m:{minute - 60}", mapping={"c": 99})  # outside the hour
    timings = StageTimingsBuffer(redis)
    timings.add({"validation": 10.0, "metadata": 30.0}, now_ms=now_ms)
    timings.add({"validation": 20.0, "metadata": 50.0}, now_ms=now_ms)
    await timings.flush()
    await redis.hset(keys.bus_instance("bus-1"), mapping={"sockets": 3, "delivered": 42})
    await redis.zadd(keys.bus_instances(), {"bus-1": now_ms, "bus-dead": now_ms})
    await api.upload(JPEG)

    resp = await api.http.get(f"{api.url}/v1/dashboard", headers=api.admin)
    assert resp.status == 200
    body = await resp.json()
    assert body["counts"]["waiting"] == 1 and body["paused"] is False
    # Photos are counted as photos (a photo makes two jobs), every client's.
    assert body["photos"] == {"queued": 1, "processing": 0, "completed": 0, "failed": 0, "total": 1}
    completed, failed = body["throughput"]["completed"], body["throughput"]["failed"]
    assert len(completed) == 60 and completed[-1] == 7 and failed[-1] == 2
    assert completed[0] == 1 and sum(completed) == 8
    stages = {s["stage"]: s for s in body["stages"]}
    assert stages["validation"]["mean_ms"][-1] == 15.0 and stages["validation"]["runs"][-1] == 2
    assert stages["metadata"]["mean_ms"][-1] == 40.0
    assert [b["id"] for b in body["bus"]] == ["bus-1"]  # the expired one is left out
    assert body["bus"][0]["sockets"] == 3 and body["bus"][0]["delivered"] == 42


async def test_listing_pages_newest_first_with_a_cursor_and_filters(api: WebApi) -> None:
    ids = []
    for i in range(5):
        resp = await api.upload(JPEG + bytes([i]))
        ids.append((await resp.json())["photo_id"])
    seen: list[str] = []
    cursor = ""
    while True:
        url = f"{api.url}/v1/photos?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (await api.http.get(url, headers=api.auth)).json()
        seen += [p["photo_id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    other = await (await api.http.get(f"{api.url}/v1/photos", headers=api.admin)).json()
    assert other["items"] == []  # another client's photos are not listed
    failed = await api.http.get(f"{api.url}/v1/photos?status=failed", headers=api.auth)
    assert (await failed.json())["items"] == []
    bad = await api.http.get(f"{api.url}/v1/photos?cursor=nonsense", headers=api.auth)
    assert bad.status == 400


async def test_delete_removes_the_photo_its_job_and_its_blobs(api: WebApi) -> None:
    photo_id = (await (await api.upload(JPEG)).json())["photo_id"]
    assert await api.waiting_jobs() == 1
    resp = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    assert resp.status == 204
    assert await api.photo_count() == 0
    assert await api.waiting_jobs() == 0
    assert not [f for f in api.blob_files() if photo_id in f]
    again = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    assert again.status == 404


async def test_queue_admin_pauses_lists_and_refuses_non_admins(api: WebApi) -> None:
    base = f"{api.url}/v1/queues/photo-processing"
    assert (await api.http.post(f"{base}/pause", headers=api.auth)).status == 403
    assert (await api.http.post(f"{base}/pause", headers=api.admin)).status == 200
    overview = await (await api.http.get(base, headers=api.admin)).json()
    assert overview["paused"] is True
    assert (await api.http.post(f"{base}/resume", headers=api.admin)).status == 200
    assert not await api.state.queue.is_paused()
    await api.upload(JPEG)
    jobs = await (await api.http.get(f"{base}/jobs?state=waiting", headers=api.admin)).json()
    [job] = jobs["items"]
    assert job["photo_id"] and len(job["trace_id"]) == 32
    missing = await api.http.post(f"{base}/jobs/photo:nope/retry", headers=api.admin)
    assert missing.status == 404


async def test_job_detail_names_the_photos_file_and_shows_its_thumbnail(api: WebApi) -> None:
    resp = await api.upload(JPEG, filename="beach day.jpg")
    photo_id = (await resp.json())["photo_id"]
    job = f"{api.url}/v1/queues/photo-processing/jobs/photo:{photo_id}"
    before = await (await api.http.get(job, headers=api.admin)).json()
    assert before["photo"]["filename"] == "beach day.jpg"
    assert before["photo"]["thumbnail_url"] is None  # not processed yet
    # Its own stages: the payload names the pipeline's every stage, but optimization runs
    # in the follow-up deferred: job (the dashboard's "Stages" line shows these).
    assert "optimization" in before["payload"]["pipeline"]["stages"]
    assert before["stages"] == ["validation", "metadata", "thumbnails"], before
    await complete(api, photo_id)
    detail = await (await api.http.get(job, headers=api.admin)).json()
    assert "photo" in detail, detail
    url = detail["photo"]["thumbnail_url"]
    assert url.startswith(f"/v1/photos/{photo_id}/derivatives/thumbnail?exp=")
    # Signed: the operator's page shows another client's thumbnail without their token.
    thumb = await api.http.get(f"{api.url}{url}")
    assert thumb.status == 200 and await thumb.read() == b"RIFF....WEBP"
