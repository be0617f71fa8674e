"""Byte ranges of a download: a cut-off download goes on from where it stopped (206), on
either store; a range past the end is a 416 saying the size; several ranges, one we cannot
read, or an ``If-Range`` for an older copy get the whole file."""

from __future__ import annotations

import os

import pytest

from filmstrip.services.api.ranges import ByteRange, bounds, requested_range
from tests.api.conftest import Api
from tests.api.factories import complete, fake_jpeg, uploaded

MiB = 1024 * 1024


@pytest.fixture
def api(any_store_api: Api) -> Api:
    """The api on the files store, or on S3."""
    return any_store_api


async def _original(api: Api, data: bytes) -> str:
    photo_id = await uploaded(api, data=data)
    resp = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    return f"{api.url}{(await resp.json())['original_url']}"


async def test_a_range_of_the_original_is_served_from_where_it_starts(api: Api) -> None:
    data = fake_jpeg() + os.urandom(3 * MiB)  # several of the stores' chunks
    url = await _original(api, data)
    size = len(data)
    for asked, first, last in (
        ("bytes=0-99", 0, 99),
        ("bytes=100-199", 100, 199),
        (f"bytes={MiB + 5}-", MiB + 5, size - 1),  # a download resumed past a chunk
        ("bytes=-50", size - 50, size - 1),
        (f"bytes=10-{size * 2}", 10, size - 1),
        (f"bytes=-{size * 2}", 0, size - 1),
    ):
        resp = await api.http.get(url, headers={"Range": asked})
        assert resp.status == 206, (asked, await resp.text())
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{size}", asked
        assert resp.headers["Content-Length"] == str(last - first + 1)
        assert await resp.read() == data[first : last + 1], asked
    whole = await api.http.get(url)
    assert (whole.status, whole.headers["Accept-Ranges"]) == (200, "bytes")
    assert await whole.read() == data


async def test_a_range_past_the_end_is_a_416_saying_the_size(api: Api) -> None:
    data = fake_jpeg()
    url = await _original(api, data)
    for asked in (f"bytes={len(data)}-", f"bytes={len(data) + 7}-{len(data) + 9}"):
        resp = await api.http.get(url, headers={"Range": asked})
        body = await resp.json()
        assert resp.status == 416, body
        assert body["error"]["code"] == "range_not_satisfiable"
        assert resp.headers["Content-Range"] == f"bytes */{len(data)}"


async def test_what_is_not_one_readable_range_gets_the_whole_file(api: Api) -> None:
    data = fake_jpeg()
    url = await _original(api, data)
    etag = (await api.http.get(url)).headers["ETag"]
    for headers in (
        {"Range": "bytes=0-1,5-6"},  # several: allowed to answer all of it
        {"Range": "bytes=5-1"},
        {"Range": "pages=1-2"},
        {"Range": "bytes=-0"},
        {"Range": "bytes=5-", "If-Range": '"an older copy"'},
    ):
        resp = await api.http.get(url, headers=headers)
        assert resp.status == 200, headers
        assert await resp.read() == data
    current = await api.http.get(url, headers={"Range": "bytes=5-", "If-Range": etag})
    assert current.status == 206
    assert await current.read() == data[5:]
    # HEAD tells the whole file's length, whatever the range.
    head = await api.http.head(url, headers={"Range": "bytes=5-"})
    assert (head.status, head.headers["Content-Length"]) == (200, str(len(data)))


async def test_a_range_of_a_derivative(api: Api) -> None:
    photo_id = await uploaded(api)
    await complete(api, photo_id)  # a thumbnail of b"RIFF....WEBP"
    resp = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    url = f"{api.url}{(await resp.json())['derivatives'][0]['url']}"
    part = await api.http.get(url, headers={"Range": "bytes=8-"})
    assert (part.status, part.headers["Content-Range"]) == (206, "bytes 8-11/12")
    assert await part.read() == b"WEBP"


@pytest.mark.parametrize(
    ("header", "wanted"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=7-", ByteRange(7, None)),
        ("bytes=-7", ByteRange(None, 7)),
        (" bytes=1-2 ", ByteRange(1, 2)),
        ("bytes=2-1", None),
        ("bytes=-", None),
        ("bytes=1-2,4-5", None),
        ("bytes = 1-2", None),
        ("items=1-2", None),
    ],
)
def test_the_range_header_read(header: str | None, wanted: ByteRange | None) -> None:
    assert requested_range(header) == wanted


def test_the_bounds_of_a_range_in_a_file() -> None:
    assert bounds(ByteRange(0, None), 10) == (0, 9)
    assert bounds(ByteRange(9, 20), 10) == (9, 9)
    assert bounds(ByteRange(10, None), 10) is None
    assert bounds(ByteRange(None, 3), 10) == (7, 9)
    assert bounds(ByteRange(None, 30), 10) == (0, 9)
    assert bounds(ByteRange(None, 3), 0) is None
