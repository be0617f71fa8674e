"""GET /v1/photos: keyset pages, filters, sorting, and stability under concurrent uploads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from filmstrip.services.api.cursors import encode_cursor
from tests.api.conftest import Api
from tests.api.factories import client_token, complete, new_session, uploaded


async def _page(api: Api, **query: str | int) -> dict[str, Any]:
    resp = await api.http.get(
        f"{api.url}/v1/photos", params={k: str(v) for k, v in query.items()}, headers=api.auth
    )
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def _all_ids(api: Api, **query: str | int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        body = await _page(api, **params)
        ids += [item["photo_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


async def _newest_first(api: Api, ids: list[str]) -> list[str]:
    """``ids`` in the documented order: upload time, then id, descending (two uploads may
    share a millisecond)."""
    keys = {}
    for photo_id in ids:
        photo = await api.state.catalog.get_photo(photo_id)
        assert photo is not None
        keys[photo_id] = (photo.uploaded_at, photo_id)
    return sorted(ids, key=keys.__getitem__, reverse=True)


async def test_pages_cover_every_photo_once_newest_first(api: Api) -> None:
    ids = await _newest_first(api, [await uploaded(api) for _ in range(7)])
    first = await _page(api, limit=3)
    assert [i["photo_id"] for i in first["items"]] == ids[:3]
    assert first["next_cursor"]
    item = first["items"][0]
    assert item["original_url"].startswith(f"/v1/photos/{item['photo_id']}/original?exp=")
    assert await _all_ids(api, limit=3) == ids
    last = await _page(api, limit=7)
    assert last["next_cursor"] is None


async def test_a_page_is_never_cached(api: Api) -> None:
    """A page changes with every upload and its signed URLs expire: no cache may keep it."""
    await uploaded(api)
    resp = await api.http.get(f"{api.url}/v1/photos", headers=api.auth)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"


async def test_paging_is_stable_while_photos_are_uploaded(api: Api) -> None:
    before = await _newest_first(api, [await uploaded(api) for _ in range(8)])
    seen: list[str] = []
    added: list[str] = []
    cursor = None
    while True:
        body = await _page(api, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [i["photo_id"] for i in body["items"]]
        # Uploads land between every two pages, some of them concurrently.
        added += await asyncio.gather(uploaded(api), uploaded(api))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a photo was served twice"
    assert seen == before, "a photo present from the start was skipped or reordered"
    assert not set(seen) & set(added)
    # The next walk from the top sees everything.
    assert set(await _all_ids(api, limit=50)) == set(before) | set(added)


async def test_filters_by_status_and_session(api: Api) -> None:
    session = await new_session(api)
    in_session = [await uploaded(api, session_id=session) for _ in range(3)]
    outside = await uploaded(api)
    await complete(api, in_session[0])

    assert set(await _all_ids(api, session_id=session)) == set(in_session)
    assert await _all_ids(api, status="completed") == [in_session[0]]
    assert set(await _all_ids(api, status="queued")) == {*in_session[1:], outside}
    assert await _all_ids(api, status="failed") == []
    both = await _all_ids(api, status="queued", session_id=session, limit=1)
    assert sorted(both) == sorted(in_session[1:])


async def test_sort_by_date_taken_and_taken_range(api: Api) -> None:
    ids = [await uploaded(api) for _ in range(4)]
    taken = ["2021-06-01T10:00:00", "2019-01-02T08:30:00+02:00", "2023-12-31T23:59:59.5", None]
    for photo_id, when in zip(ids, taken, strict=True):
        await complete(api, photo_id, taken_at=when)

    # Newest taken first; the photo without a date comes last.
    assert await _all_ids(api, sort="taken", limit=1) == [ids[2], ids[0], ids[1], ids[3]]
    after_2020 = await _all_ids(api, sort="taken", taken_after="2020-01-01")
    assert after_2020 == [ids[2], ids[0]]
    assert await _all_ids(api, sort="taken", taken_before="2021-06-01T10:00:00") == [ids[1]]
    in_2021 = await _all_ids(api, taken_after="2021-01-01", taken_before="2022-01-01T00:00:00Z")
    assert in_2021 == [ids[0]]
    # A bound is by wall-clock digits, its offset ignored: at ten, inclusive after, not before.
    at_ten = "2021-06-01T10:00:00+02:00"
    assert await _all_ids(api, sort="taken", taken_after=at_ten) == [ids[2], ids[0]]
    assert await _all_ids(api, sort="taken", taken_before=at_ten) == [ids[1]]


async def test_another_clients_or_an_unknown_session_is_404(api: Api) -> None:
    """As on every route (docs/api.md): the listing does not answer an empty page for a
    session the client does not have, its own empty session does."""
    other = await client_token(api, "bob")
    theirs = await new_session(api, token=other)
    await uploaded(api, token=other, session_id=theirs)
    for session_id in (theirs, "no-such-session"):
        resp = await api.http.get(
            f"{api.url}/v1/photos", params={"session_id": session_id}, headers=api.auth
        )
        body = await resp.json()
        assert resp.status == 404, body
        assert body["error"]["code"] == "session_not_found"
    mine = await new_session(api)
    assert (await _page(api, session_id=mine))["items"] == []
    assert await _all_ids(api, session_id=mine, status="failed") == []
    photo_id = await uploaded(api, session_id=mine)
    assert await _all_ids(api, session_id=mine, limit=1) == [photo_id]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "201"}, "bad_limit"),
        ({"limit": "0"}, "bad_limit"),
        ({"limit": "ten"}, "bad_limit"),
        ({"status": "lost"}, "bad_status"),
        ({"sort": "size"}, "bad_sort"),
        ({"taken_after": "last tuesday"}, "bad_date"),
        ({"taken_before": "2024-13-01"}, "bad_date"),
        ({"session_id": "no spaces"}, "bad_session_id"),
        ({"cursor": "!!not-base64!!"}, "bad_cursor"),
        ({"cursor": "café"}, "bad_cursor"),  # base64 of text that is not ASCII
        ({"cursor": encode_cursor("taken", "2020", "x")}, "bad_cursor"),
        # No cursor made holds a control character; PostgreSQL could not compare a NUL.
        ({"cursor": encode_cursor("uploaded", "2020\x00", "x")}, "bad_cursor"),
        ({"cursor": encode_cursor("uploaded", "2020", "x\x1f")}, "bad_cursor"),
    ],
)
async def test_bad_queries_are_400(api: Api, query: dict[str, str], code: str) -> None:
    resp = await api.http.get(f"{api.url}/v1/photos", params=query, headers=api.auth)
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"]["code"] == code


async def test_limit_200_is_allowed(api: Api) -> None:
    assert (await _page(api, limit=200))["items"] == []
