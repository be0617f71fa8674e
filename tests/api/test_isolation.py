"""Tenant isolation: client B can reach nothing of client A's, through any endpoint.

Every row is first tried by A (the owner) where that is harmless, so a row that returns
404 because its path is wrong cannot pass as "isolated".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.api.conftest import Api
from tests.api.factories import bearer, complete, fail, fake_jpeg, new_session, uploaded

Q = "/v1/queues/photo-processing"


@dataclass
class Row:
    name: str
    method: str
    path: str
    status: int  # what B gets
    code: str | None = None
    owner_status: int | None = None  # what A gets (None: not tried, it would change state)
    json: Any = None
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token: bool = True


def _tamper(url: str) -> str:
    """``url`` with the last hex digit of its signature changed (never to itself)."""
    return url[:-1] + ("1" if url[-1] == "0" else "0")


async def _send(api: Api, row: Row, token: str | None) -> aiohttp.ClientResponse:
    headers = {**(bearer(token) if token else {}), **row.headers}
    data = None
    if row.form is not None:
        data = aiohttp.FormData()
        for key, value in row.form.items():
            data.add_field(key, value)
        data.add_field("file", fake_jpeg(), filename="b.jpg", content_type="image/jpeg")
    return await api.http.request(
        row.method, f"{api.url}{row.path}", json=row.json, data=data, headers=headers
    )


async def test_client_b_reaches_nothing_of_client_a(api: Api) -> None:
    a = api.token
    failed = await uploaded(api, token=a)
    await fail(api, failed)
    session = await new_session(api, token=a)
    data = fake_jpeg()
    photo = await uploaded(api, token=a, session_id=session, data=data)
    await complete(api, photo)
    digest = hashlib.sha256(data).hexdigest()
    view = await (await api.http.get(f"{api.url}/v1/photos/{photo}", headers=bearer(a))).json()
    signed_original = view["original_url"]
    signed_thumb = view["derivatives"][0]["url"]

    b = await api.new_token("bob")
    b_photo = await uploaded(api, token=b)
    query = signed_original.split("?", 1)[1]

    rows = [
        Row("read photo", "GET", f"/v1/photos/{photo}", 404, "photo_not_found", 200),
        Row("read original", "GET", f"/v1/photos/{photo}/original", 404, None, 200),
        Row("read derivative", "GET", f"/v1/photos/{photo}/derivatives/thumbnail", 404, None, 200),
        Row("A's signed URL with B's token", "GET", signed_original, 404, None, 200),
        Row("A's signed URL, tampered to B's photo", "GET",
            f"/v1/photos/{b_photo}/original?{query}", 403, "bad_signature", token=False),
        Row("A's signed URL, tampered to a derivative", "GET",
            f"/v1/photos/{photo}/derivatives/thumbnail?{query}", 403, "bad_signature",
            token=False),
        Row("A's signed URL, tampered signature", "GET", _tamper(signed_thumb), 403,
            "bad_signature", token=False),
        Row("retry photo", "POST", f"/v1/photos/{failed}/retry", 404, "photo_not_found"),
        Row("delete photo", "DELETE", f"/v1/photos/{photo}", 404, "photo_not_found"),
        Row("read session", "GET", f"/v1/sessions/{session}", 404, "session_not_found", 200),
        Row("upload into A's session", "POST", "/v1/photos", 404, "session_not_found",
            form={"session_id": session}),
        Row("queue overview", "GET", Q, 403, "forbidden"),
        Row("queue jobs", "GET", f"{Q}/jobs", 403, "forbidden"),
        Row("retry A's job", "POST", f"{Q}/jobs/photo:{failed}/retry", 403, "forbidden"),
        Row("remove A's job", "DELETE", f"{Q}/jobs/photo:{failed}", 403, "forbidden"),
        Row("pause the queue", "POST", f"{Q}/pause", 403, "forbidden"),
    ]  # fmt: skip

    for row in rows:
        if row.owner_status is not None:
            resp = await _send(api, row, a)
            assert resp.status == row.owner_status, f"owner: {row.name}: {await resp.text()}"
        resp = await _send(api, row, b if row.token else None)
        text = await resp.text()
        assert resp.status == row.status, f"{row.name}: {resp.status} {text}"
        if row.code is not None:
            assert (await resp.json())["error"]["code"] == row.code, f"{row.name}: {text}"

    # Listing, filtering by A's session and the hash check show B only its own photos.
    listed = await (await api.http.get(f"{api.url}/v1/photos", headers=bearer(b))).json()
    assert [i["photo_id"] for i in listed["items"]] == [b_photo]
    by_session = await api.http.get(
        f"{api.url}/v1/photos", params={"session_id": session}, headers=bearer(b)
    )
    # A's session does not exist for B, as on every route (docs/api.md).
    assert by_session.status == 404
    assert (await by_session.json())["error"]["code"] == "session_not_found"
    check = await api.http.post(
        f"{api.url}/v1/photos/check", json={"sha256": [digest]}, headers=bearer(b)
    )
    assert await check.json() == {"existing": {}}
    own_check = await api.http.post(
        f"{api.url}/v1/photos/check", json={"sha256": [digest]}, headers=bearer(a)
    )
    assert await own_check.json() == {"existing": {digest: photo}}
    # A's checksum header does not hand B A's photo.
    declared = await api.upload(data, token=b, headers={"X-Content-SHA256": digest})
    assert declared.status == 201 and (await declared.json())["photo_id"] != photo

    # A's things are all still there and unchanged.
    assert (await api.state.catalog.get_photo(photo)) is not None
    still_failed = await api.state.catalog.get_photo(failed)
    assert still_failed is not None and still_failed.status == "failed"
    assert await api.state.queue.get_job(f"photo:{failed}") is not None
    assert not await api.state.queue.is_paused()
    assert await api.state.catalog.get_session(session) is not None


async def test_a_sig_parameter_opens_only_the_blob_routes(api: Api) -> None:
    """``?sig=`` lets a request skip the token only where the signature is then checked."""
    photo = await uploaded(api)
    session = await new_session(api)
    for path in (
        "/v1/photos",
        f"/v1/photos/{photo}",
        f"/v1/sessions/{session}",
        Q,
        f"{Q}/jobs",
    ):
        resp = await api.http.get(f"{api.url}{path}", params={"sig": "x", "exp": "9999999999"})
        body = await resp.json()
        assert resp.status == 401, f"{path}: {body}"
        assert body["error"]["code"] == "unauthorized"
    blob = await api.http.get(
        f"{api.url}/v1/photos/{photo}/original", params={"sig": "x", "exp": "9999999999"}
    )
    assert blob.status == 403
    # Without a signature a blob route asks for a token, as every other route does.
    bare = await api.http.get(f"{api.url}/v1/photos/{photo}/original")
    assert bare.status == 401 and (await bare.json())["error"]["code"] == "unauthorized"
    assert bare.headers["WWW-Authenticate"].startswith("Bearer")
