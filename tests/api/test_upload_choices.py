"""Each upload may choose its pipeline and priority (form fields or tus metadata); a bad
choice is refused before anything is stored, and the job carries a good one."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from filmstrip.photos import decode_job
from tests.api.conftest import Api
from tests.api.factories import bearer, client_token, fake_jpeg

TUS = {"Tus-Resumable": "1.0.0"}


async def _post(api: Api, fields: list[tuple[str, str]], *, token: str | None = None) -> Any:
    """A multipart upload whose fields come in the order given (``file`` among them)."""
    form = aiohttp.FormData()
    for name, value in fields:
        if name == "file":
            form.add_field("file", fake_jpeg(), filename="a.jpg", content_type="image/jpeg")
        else:
            form.add_field(name, value)
    resp = await api.http.post(
        f"{api.url}/v1/photos", data=form, headers=bearer(token or api.token)
    )
    return resp.status, await resp.json()


async def _job_of(api: Api, photo_id: str) -> tuple[str, list[str], int, int]:
    """The queued job's pipeline, stages and priority, and the queue's priority for it."""
    photo = await api.state.catalog.get_photo(photo_id)
    assert photo is not None
    info = await api.state.queue.get_job(photo.job_id)
    assert info is not None
    job = decode_job(info.payload)
    return job.pipeline.name, job.pipeline.stages, job.pipeline.priority, info.priority


async def test_the_job_carries_the_uploads_pipeline_and_priority(api: Api) -> None:
    status, body = await _post(
        api, [("pipeline", "quick_processing"), ("file", ""), ("priority", "9")]
    )
    assert status == 201, body
    assert await _job_of(api, body["photo_id"]) == (
        "quick_processing",
        ["validation", "thumbnails"],
        9,
        9,
    )
    status, body = await _post(api, [("file", "")])
    assert await _job_of(api, body["photo_id"]) == (
        "full_processing",
        ["validation", "metadata", "thumbnails", "optimization"],
        5,
        5,
    )


@pytest.mark.parametrize("file_first", [False, True])
@pytest.mark.parametrize(
    ("field", "value", "status", "code"),
    [
        ("pipeline", "fast_processing", 400, "unknown_pipeline"),
        ("priority", "0", 400, "bad_priority"),
        ("priority", "11", 400, "bad_priority"),
        ("priority", "high", 400, "bad_priority"),
        ("priority", "²", 400, "bad_priority"),
        ("priority", "4", 403, "priority_not_allowed"),  # ahead of the default (5)
    ],
)
async def test_a_bad_choice_stores_nothing(
    api: Api, file_first: bool, field: str, value: str, status: int, code: str
) -> None:
    fields = [("file", ""), (field, value)] if file_first else [(field, value), ("file", "")]
    answer, body = await _post(api, fields)
    assert (answer, body["error"]["code"]) == (status, code)
    assert api.blob_files() == []
    assert await api.photo_count() == 0
    assert await api.waiting_jobs() == 0


async def test_an_admin_may_go_ahead_of_the_default(api: Api) -> None:
    admin = await client_token(api, "ops", admin=True)
    status, body = await _post(api, [("priority", "1"), ("file", "")], token=admin)
    assert status == 201, body
    assert (await _job_of(api, body["photo_id"]))[2:] == (1, 1)


def _metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


async def _tus(api: Api, metadata: str) -> aiohttp.ClientResponse:
    data = fake_jpeg()
    headers = {
        **api.auth,
        **TUS,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata,
        "Content-Type": "application/offset+octet-stream",
    }
    return await api.http.post(f"{api.url}/v1/uploads", headers=headers, data=data)


async def test_tus_metadata_chooses_too_and_a_bad_choice_makes_no_upload(api: Api) -> None:
    resp = await _tus(api, _metadata(pipeline="quick_processing", priority="6"))
    assert resp.status == 201, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert (await _job_of(api, photo_id))[0::2] == ("quick_processing", 6)

    def uploads() -> list[str]:
        root = api.settings.effective_tus_dir
        return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))

    before = uploads()
    for metadata, status, code in (
        (_metadata(pipeline="nope"), 400, "unknown_pipeline"),
        (_metadata(priority="3"), 403, "priority_not_allowed"),
    ):
        resp = await _tus(api, metadata)
        assert (resp.status, (await resp.json())["error"]["code"]) == (status, code)
    assert uploads() == before
    assert await api.photo_count() == 1
