"""A client that drops its connection mid-body (a phone losing signal mid-upload) is not a
server failure: no ERROR line, no 5xx counted or logged, and nothing stored. The request
is counted and logged as 499, nginx's "client closed request" (no status was ever sent)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from filmstrip.metrics import http as http_metrics
from filmstrip.redis_client import RedisClient
from tests.api.conftest import Api, api_settings, running_api
from tests.api.factories import fake_jpeg

BODY = 3 * 1024 * 1024
BOUNDARY = "cutb0undary"


@pytest.fixture
async def big_api(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[Api]:
    settings = api_settings(tmp_path, redis_url, max_upload_bytes=str(8 * BODY))
    async with running_api(settings, "alice") as running:
        yield running


def _counts(route: str) -> dict[str, float]:
    """Requests counted for ``route`` so far, by status."""
    found: dict[str, float] = {}
    for metric in http_metrics.REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("route") == route:
                status = sample.labels["status"]
                found[status] = found.get(status, 0) + sample.value
    return found


def _multipart_body() -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    photo = fake_jpeg()
    return head + photo + b"\0" * (BODY - len(head) - len(photo) - len(tail)) + tail


async def _send_then_cut(
    api: Api, path: str, content_type: str, body: bytes, sent: int, *, reset: bool
) -> None:
    """Send the head of a request for all of ``body``, then ``sent`` bytes of it, then close
    (RST if ``reset``, else FIN)."""
    parts = urlsplit(api.url)
    _reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {api.token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[:sent])
    await writer.drain()
    await asyncio.sleep(0.1)  # the handler is reading the body when the cut comes
    if reset:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def _until_counted(route: str, before: float) -> dict[str, float]:
    for _ in range(200):
        counts = _counts(route)
        if sum(counts.values()) > before:
            return counts
        await asyncio.sleep(0.05)
    raise AssertionError(f"the cut request to {route} was never counted")


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("sent", [0, 50, 200_000], ids=["headers-only", "50B", "200kB"])
async def test_an_upload_cut_mid_body_ends_quietly(
    big_api: Api, caplog: pytest.LogCaptureFixture, sent: int, reset: bool
) -> None:
    api = big_api
    route = "/v1/photos"
    before = _counts(route)
    with caplog.at_level(logging.DEBUG, "filmstrip"):
        await _send_then_cut(
            api,
            route,
            f"multipart/form-data; boundary={BOUNDARY}",
            _multipart_body(),
            sent,
            reset=reset,
        )
        after = await _until_counted(route, sum(before.values()))
        await asyncio.sleep(0.2)  # the access log line follows the handler
    new = {status: after[status] - before.get(status, 0) for status in after}
    assert {s: n for s, n in new.items() if n} == {"499": 1}, new
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
    logged = [r for r in caplog.records if r.getMessage() == "request"]
    assert [getattr(r, "status", None) for r in logged] == [499]
    assert await api.photo_count() == 0
    assert api.blob_files() == []
    # The api serves the next upload as ever.
    assert (await api.upload(fake_jpeg())).status == 201


@pytest.mark.parametrize("sent", [0, 50], ids=["headers-only", "50B"])
async def test_a_hash_check_cut_mid_body_ends_quietly(
    api: Api, caplog: pytest.LogCaptureFixture, sent: int
) -> None:
    route = "/v1/photos/check"
    before = _counts(route)
    body = b'{"sha256": [' + b",".join([b'"' + b"a" * 64 + b'"'] * 900) + b"]}"
    with caplog.at_level(logging.DEBUG, "filmstrip"):
        await _send_then_cut(api, route, "application/json", body, sent, reset=True)
        after = await _until_counted(route, sum(before.values()))
        await asyncio.sleep(0.2)
    new = {status: after[status] - before.get(status, 0) for status in after}
    assert {s: n for s, n in new.items() if n} == {"499": 1}, new
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not errors, [r.getMessage() for r in errors]
