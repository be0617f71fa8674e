"""POST /v1/photos: accepted uploads, and every kind of bad input leaving nothing behind."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from pathlib import Path

import aiohttp
import pytest

from bench.moto_server import MotoServer
from filmstrip.catalog import PhotoStatus
from filmstrip.photos import decode_job
from filmstrip.services.api.state import STATE
from filmstrip.services.cli.tokens import issue_token
from tests.api.conftest import Api, api_settings, start_api
from tests.api.factories import fake_jpeg


async def _error(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, str]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def _assert_nothing_left(api: Api) -> None:
    assert api.blob_files() == []
    assert await api.photo_count() == 0
    assert await api.waiting_jobs() == 0


async def test_upload_is_accepted_recorded_and_queued(api: Api, corpus: Path) -> None:
    data = (corpus / "real/Landscape_6.jpg").read_bytes()
    resp = await api.upload(data)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["status"] == "queued"
    assert body["job_id"] == f"photo:{body['photo_id']}"
    assert resp.headers["X-Trace-Id"]

    photo = await api.state.catalog.get_photo(body["photo_id"])
    assert photo is not None
    assert photo.status == PhotoStatus.QUEUED
    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    assert photo.bytes == len(data)
    assert photo.content_type == "image/jpeg"
    blobs = [f for f in api.blob_files() if not f.startswith(".meta/")]
    assert blobs == [f"originals/{body['photo_id']}"]
    assert await api.waiting_jobs() == 1
    job = await api.state.queue.get_job(body["job_id"])
    assert job is not None
    spec = decode_job(job.payload)
    assert spec.photo_id == body["photo_id"]
    assert spec.storage.key == f"originals/{body['photo_id']}"
    assert spec.pipeline.stages == ["validation", "metadata", "thumbnails", "optimization"]
    assert spec.context.trace_id == resp.headers["X-Trace-Id"]

    got = await api.http.get(f"{api.url}/v1/photos/{body['photo_id']}", headers=api.auth)
    view = await got.json()
    assert got.status == 200
    assert view["status"] == "queued" and view["derivatives"] == []

    original = await api.http.get(f"{api.url}{view['original_url']}")
    assert original.status == 200
    assert await original.read() == data
    assert original.headers["Content-Type"] == "image/jpeg"
    assert original.headers["ETag"]
    assert "max-age" in original.headers["Cache-Control"]
    again = await api.http.get(
        f"{api.url}{view['original_url']}", headers={"If-None-Match": original.headers["ETag"]}
    )
    assert again.status == 304


async def test_type_comes_from_bytes_not_name(api: Api, corpus: Path) -> None:
    png_named_jpg = (corpus / "real/kimono.crop.png").read_bytes()
    resp = await api.upload(png_named_jpg, filename="lies.jpg")
    assert resp.status == 201
    photo = await api.state.catalog.get_photo((await resp.json())["photo_id"])
    assert photo is not None and photo.content_type == "image/png"


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("text", b"hello, this is not a photo at all\n" * 10),
        ("html named jpg", b"<html><script>alert(1)</script></html>"),
        ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>x()</script></svg>'),
        ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
        ("one byte", b"\xff"),
    ],
)
async def test_not_a_photo_is_415(api: Api, name: str, payload: bytes) -> None:
    await _error(await api.upload(payload), 415, "unsupported_type")
    await _assert_nothing_left(api)


async def test_corpus_non_images_are_415(api: Api, corpus: Path) -> None:
    for rel in ("bad/html_with_script.jpg", "bad/photo.jpg", "bad/script.svg"):
        await _error(await api.upload((corpus / rel).read_bytes()), 415, "unsupported_type")
    await _assert_nothing_left(api)


async def test_empty_file_is_400(api: Api) -> None:
    await _error(await api.upload(b""), 400, "empty_file")
    await _assert_nothing_left(api)


async def test_over_limit_is_413_and_partial_blob_removed(api: Api, corpus: Path) -> None:
    big = (corpus / "real/Canon_PowerShot_A85.jpg").read_bytes()  # 1.2 MB > 400 kB limit
    assert len(big) > api.settings.api.max_upload_bytes

    resp = await api.upload(big)
    await _error(resp, 413, "too_large")
    await _assert_nothing_left(api)


async def test_over_limit_while_streaming_chunked(api: Api, corpus: Path) -> None:
    big = (corpus / "real/Canon_PowerShot_A85.jpg").read_bytes()
    boundary = "filmstripboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def chunks():  # type: ignore[no-untyped-def]
        yield head
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]
        yield tail

    resp = await api.http.post(
        f"{api.url}/v1/photos",
        data=chunks(),
        headers={**api.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    await _error(resp, 413, "too_large")
    await _assert_nothing_left(api)


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(
    api: Api,
) -> None:
    # A client about to send 1 GB hears at once that it may not, not after it sent it.
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            (
                "POST /v1/photos HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {api.token}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {1 << 30}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        async with asyncio.timeout(5):
            status = await reader.readline()
    finally:
        writer.close()
    assert status.split()[1] == b"413", status
    await _assert_nothing_left(api)


async def test_a_compressed_upload_is_415_unsupported_encoding(api: Api) -> None:
    # aiohttp would inflate it before any size check saw the bytes (a decompression bomb).
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + fake_jpeg() + b"\r\n--b--\r\n"
    )
    resp = await api.http.post(
        f"{api.url}/v1/photos",
        data=gzip.compress(body),
        headers={
            **api.auth,
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Encoding": "gzip",
        },
    )
    await _error(resp, 415, "unsupported_encoding")
    await _assert_nothing_left(api)


async def test_missing_file_field_is_400(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("session_id", "abc")
    form.add_field("photo", b"\xff\xd8\xff", filename="x.jpg")
    resp = await api.http.post(f"{api.url}/v1/photos", data=form, headers=api.auth)
    await _error(resp, 400, "missing_file")
    await _assert_nothing_left(api)


@pytest.mark.parametrize("size", [3, 348_000])
async def test_a_file_under_another_field_name_is_400_missing_file_naming_it(
    api: Api, size: int
) -> None:
    """Whatever its size (a large one used to be refused as a form field too large)."""
    form = aiohttp.FormData()
    form.add_field("image", b"\xff\xd8\xff" + b"\0" * (size - 3), filename="x.jpg")
    resp = await api.http.post(f"{api.url}/v1/photos", data=form, headers=api.auth)
    error = await _error(resp, 400, "missing_file")
    assert "'image'" in error["message"], error
    await _assert_nothing_left(api)


@pytest.mark.parametrize(
    "content_type", ["image/jpeg", "multipart/form-datax; boundary=b", "multipart/mixed", ""]
)
async def test_not_multipart_is_400(api: Api, content_type: str) -> None:
    resp = await api.http.post(
        f"{api.url}/v1/photos",
        data=b"\xff\xd8\xff\xe0",
        headers={**api.auth, "Content-Type": content_type},
    )
    await _error(resp, 400, "not_multipart")
    await _assert_nothing_left(api)


async def test_multipart_media_type_is_case_insensitive(api: Api, corpus: Path) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--b--\r\n"
    )
    resp = await api.http.post(
        f"{api.url}/v1/photos",
        data=body,
        headers={**api.auth, "Content-Type": "Multipart/Form-Data ; boundary=b"},
    )
    assert resp.status == 201, await resp.text()


async def test_unknown_session_is_404_and_blob_removed(api: Api, corpus: Path) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    resp = await api.upload(data, fields={"session_id": "no-such-session"})
    await _error(resp, 404, "session_not_found")
    await _assert_nothing_left(api)


@pytest.mark.parametrize(
    "session_id", ["x" * 65, "no spaces", "é"], ids=["65 chars", "space", "non-ASCII"]
)
async def test_a_malformed_session_id_is_400_and_blob_removed(api: Api, session_id: str) -> None:
    resp = await api.upload(fake_jpeg(), fields={"session_id": session_id})
    await _error(resp, 400, "bad_session_id")
    await _assert_nothing_left(api)


async def test_no_token_and_bad_token_are_401(api: Api) -> None:
    resp = await api.http.get(f"{api.url}/v1/photos/00000000-0000-0000-0000-000000000000")
    await _error(resp, 401, "unauthorized")
    resp = await api.upload(b"\xff\xd8\xff", token="fst_not-a-real-token")
    await _error(resp, 401, "invalid_token")


async def test_another_clients_photo_is_404(api: Api, corpus: Path) -> None:
    resp = await api.upload((corpus / "real/Landscape_1.jpg").read_bytes())
    photo_id = (await resp.json())["photo_id"]
    bob = await api.new_token("bob")
    for path in ("", "/original", "/derivatives/thumbnail"):
        got = await api.http.get(
            f"{api.url}/v1/photos/{photo_id}{path}", headers={"Authorization": f"Bearer {bob}"}
        )
        await _error(got, 404, "photo_not_found")


async def test_tampered_or_expired_signature_is_403(api: Api, corpus: Path) -> None:
    resp = await api.upload((corpus / "real/Landscape_1.jpg").read_bytes())
    photo_id = (await resp.json())["photo_id"]
    base = f"{api.url}/v1/photos/{photo_id}/original"
    good = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    url = (await good.json())["original_url"]
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    await _error(await api.http.get(f"{api.url}{tampered}"), 403, "bad_signature")
    await _error(await api.http.get(f"{base}?exp=1&sig=abc"), 403, "bad_signature")


async def test_duplicate_bytes_answer_200_with_existing_photo(api: Api, corpus: Path) -> None:
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    first = await (await api.upload(data)).json()
    resp = await api.upload(data)
    body = await resp.json()
    assert resp.status == 200
    assert body["duplicate"] is True and body["photo_id"] == first["photo_id"]
    assert await api.photo_count() == 1
    assert await api.waiting_jobs() == 1
    assert len([f for f in api.blob_files() if f.startswith("originals/")]) == 1
    # The checksum header answers before the body is read.
    resp = await api.upload(b"", headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()})
    assert resp.status == 200 and (await resp.json())["photo_id"] == first["photo_id"]
    # Another client uploading the same bytes gets a photo of its own.
    other = await api.upload(data, token=await api.new_token())
    assert other.status == 201


async def test_concurrent_uploads_of_the_same_bytes_are_one_photo(api: Api, corpus: Path) -> None:
    """Six requests of the same bytes at once all pass the duplicate check before any is
    recorded: one 201, five 200s naming its photo, one row, one job, one original."""
    data = (corpus / "real/Landscape_3.jpg").read_bytes()
    answers = await asyncio.gather(*(api.upload(data) for _ in range(6)))
    bodies = [await r.json() for r in answers]
    assert sorted(r.status for r in answers) == [200] * 5 + [201], bodies
    assert len({b["photo_id"] for b in bodies}) == 1, bodies
    assert await api.photo_count() == 1
    assert await api.waiting_jobs() == 1
    assert len([f for f in api.blob_files() if f.startswith("originals/")]) == 1


async def test_redis_unreachable_is_503_and_nothing_left(
    tmp_path: Path, corpus: Path, redis_server: object
) -> None:
    from filmstrip.embedded.redis_server import free_port

    settings = api_settings(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    runner, url = await start_api(settings)
    try:
        state = runner.app[STATE]
        _c, token = await issue_token(state.catalog, "carol", admin=False)
        form = aiohttp.FormData()
        form.add_field("file", (corpus / "real/Landscape_1.jpg").read_bytes(), filename="a.jpg")
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                f"{url}/v1/photos", data=form, headers={"Authorization": f"Bearer {token}"}
            )
            await _error(resp, 503, "queue_unavailable")
            assert resp.headers["Retry-After"]
            ready = await http.get(f"{url}/readyz")
            assert ready.status == 503
            assert (await ready.json())["checks"]["redis"] != "ok"
        rows = await state.catalog._fetchall("SELECT COUNT(*) FROM photos")
        assert rows[0][0] == 0
    finally:
        await runner.cleanup()


async def test_health_and_ready(api: Api) -> None:
    assert (await api.http.get(f"{api.url}/healthz")).status == 200
    ready = await api.http.get(f"{api.url}/readyz")
    assert ready.status == 200, await ready.text()


async def test_blob_store_unreachable_is_503_and_nothing_left(
    tmp_path: Path, corpus: Path, redis_server: object, redis: object, moto_server: MotoServer
) -> None:
    settings = api_settings(
        tmp_path,
        redis_server.url,  # type: ignore[attr-defined]
        blob_url="s3://uploads-outage",
        s3_endpoint_url=moto_server.url,
        s3_access_key_id="test",
        s3_secret_access_key="test",
    )
    runner, url = await start_api(settings)
    state = runner.app[STATE]
    _c, token = await issue_token(state.catalog, "dave", admin=False)
    data = (corpus / "real/Landscape_1.jpg").read_bytes()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            form = aiohttp.FormData()
            form.add_field("file", data, filename="a.jpg")
            ok = await http.post(f"{url}/v1/photos", data=form)
            assert ok.status == 201, await ok.text()
            moto_server.stop()
            try:
                form = aiohttp.FormData()
                form.add_field("file", data + b"\0" * 10, filename="b.jpg")
                resp = await http.post(f"{url}/v1/photos", data=form)
                await _error(resp, 503, "blob_store_unavailable")
                ready = await http.get(f"{url}/readyz")
                assert ready.status == 503
            finally:
                moto_server.start()
        rows = await state.catalog._fetchall("SELECT COUNT(*) FROM photos")
        assert rows[0][0] == 1  # only the upload made before the outage
        assert (await state.queue.counts())["waiting"] == 1
    finally:
        await runner.cleanup()
