"""Duplicates: POST /v1/photos/check and the X-Content-SHA256 short cut."""

from __future__ import annotations

import asyncio
import hashlib
import json
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import Api
from tests.api.factories import fake_jpeg, uploaded


async def test_check_names_the_existing_hashes(api: Api) -> None:
    data = fake_jpeg()
    photo_id = await uploaded(api, data=data)
    have = hashlib.sha256(data).hexdigest()
    new = hashlib.sha256(b"never uploaded").hexdigest()

    resp = await api.http.post(
        f"{api.url}/v1/photos/check",
        json={"sha256": [new, have.upper(), have]},
        headers=api.auth,
    )
    body = await resp.json()
    assert resp.status == 200, body
    # Each digest as the client sent it: a client finds the match under its own string.
    assert body == {"existing": {have: photo_id, have.upper(): photo_id}}


async def test_an_upper_case_digest_is_answered_under_the_string_sent(api: Api) -> None:
    data = fake_jpeg()
    photo_id = await uploaded(api, data=data)
    mixed = hashlib.sha256(data).hexdigest()[:32].upper() + hashlib.sha256(data).hexdigest()[32:]
    resp = await api.http.post(
        f"{api.url}/v1/photos/check", json={"sha256": [mixed]}, headers=api.auth
    )
    assert resp.status == 200
    assert await resp.json() == {"existing": {mixed: photo_id}}


async def test_check_accepts_1000_and_refuses_1001(api: Api) -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1001)]
    ok = await api.http.post(
        f"{api.url}/v1/photos/check", json={"sha256": hashes[:1000]}, headers=api.auth
    )
    assert ok.status == 200 and (await ok.json()) == {"existing": {}}
    over = await api.http.post(
        f"{api.url}/v1/photos/check", json={"sha256": hashes}, headers=api.auth
    )
    answer = await over.json()
    assert over.status == 413, answer
    assert answer["error"]["code"] == "too_large"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "bad_json"),
        # Not of the shape {"sha256": [digests]}: bad_json too, as the error-code table says.
        (b"{}", "bad_json"),
        (b'{"sha256": "abc"}', "bad_json"),
        (b'{"sha256": ["abc"]}', "bad_json"),
        (b'{"sha256": "' + b"a" * 64 + b'"}', "bad_json"),
        (b'{"sha256": [], "extra": 1}', "bad_json"),
        (b'[{"sha256": []}]', "bad_json"),
    ],
)
async def test_bad_check_bodies_are_400(api: Api, body: bytes, code: str) -> None:
    resp = await api.http.post(
        f"{api.url}/v1/photos/check",
        data=body,
        headers={**api.auth, "Content-Type": "application/json"},
    )
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error"]["code"] == code


async def test_declared_hash_of_a_duplicate_answers_before_the_body(api: Api) -> None:
    data = fake_jpeg()
    photo_id = await uploaded(api, data=data)
    # The body is not a photo at all: only the header can have produced the answer.
    resp = await api.upload(
        b"not even an image", headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()}
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["photo_id"] == photo_id and body["duplicate"] is True
    assert await api.waiting_jobs() == 1


async def test_same_bytes_by_another_client_is_a_separate_photo(api: Api) -> None:
    data = fake_jpeg()
    mine = await uploaded(api, data=data)
    again = await api.upload(data)
    assert again.status == 200 and (await again.json())["photo_id"] == mine
    other = await api.new_token()
    resp = await api.upload(data, token=other)
    body = await resp.json()
    assert resp.status == 201, body
    assert body["photo_id"] != mine and body["duplicate"] is False
    assert await api.waiting_jobs() == 2


async def test_declared_hash_that_does_not_match_the_bytes_is_400(api: Api) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    resp = await api.upload(fake_jpeg(), headers={"X-Content-SHA256": wrong})
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"]["code"] == "checksum_mismatch"
    assert await api.photo_count() == 0
    assert api.blob_files() == []
    assert await api.waiting_jobs() == 0


async def test_declared_hash_that_matches_is_accepted(api: Api) -> None:
    data = fake_jpeg()
    resp = await api.upload(data, headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()})
    assert resp.status == 201, await resp.text()


async def test_a_check_body_arriving_in_pieces_is_read_whole(api: Api) -> None:
    """A body in several TCP segments (any batch over ~64 kB, or a slow link) is read to
    its end, not parsed from the first piece that arrived."""
    data = fake_jpeg()
    photo_id = await uploaded(api, data=data)
    have = hashlib.sha256(data).hexdigest()
    body = json.dumps({"sha256": [have]}).encode()
    parts = urlsplit(api.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"POST /v1/photos/check HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {api.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body[:20]
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(body[20:])
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    assert json.loads(payload) == {"existing": {have: photo_id}}
