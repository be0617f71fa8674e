"""Queue administration (admin tokens) and a client retrying its own failed photo."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.factories import bearer, client_token, complete, fail, uploaded

Q = "/v1/queues/photo-processing"


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

    await fail(api, photo_id)
    resp = await api.http.post(f"{api.url}/v1/photos/{photo_id}/retry", headers=api.auth)
    body = await _json(resp, 202)
    assert body == {"photo_id": photo_id, "job_id": f"photo:{photo_id}", "status": "queued"}
    info = await api.state.queue.get_job(f"photo:{photo_id}")
    assert info is not None and info.state.value == "waiting"
    photo = await api.state.catalog.get_photo(photo_id)
    assert photo is not None and photo.status == "queued"


async def test_retry_after_the_dead_letter_was_removed_enqueues_afresh(api: Api) -> None:
    photo_id = await uploaded(api)
    await fail(api, photo_id)
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
