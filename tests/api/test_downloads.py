"""Downloads: a client that goes away mid-download (a browser dropping an image it no longer
shows) is not a server failure: no ERROR line, no 500 counted, and the blob's stream is
closed; a file that cannot be downloaded is a 404 with its code."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from filmstrip.blobs.base import BlobInfo, BlobStore
from filmstrip.metrics import http as http_metrics
from filmstrip.redis_client import RedisClient
from tests.api.conftest import Api, api_settings, running_api
from tests.api.factories import fake_jpeg, uploaded

# More than loopback's socket buffers hold, so the api is still writing when the reset comes.
SIZE = 24 * 1024 * 1024


def _count_500s() -> float:
    return sum(
        sample.value
        for metric in http_metrics.REQUESTS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("status") == "500"
    )


async def _read_headers_then_reset(url: str, path: str) -> bytes:
    """GET ``path`` over a raw socket, read the head and a little body, then reset."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(1000)
    sock = writer.get_extra_info("socket")
    # RST, not FIN: the api's next write fails at once, as with a vanished browser.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    return head


async def test_a_client_gone_mid_download_is_no_error(
    redis_url: str, redis: RedisClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api_settings(tmp_path, redis_url, max_upload_bytes=str(SIZE * 2))
    async with running_api(settings, "alice") as api:
        data = fake_jpeg() + b"\0" * SIZE  # the api keeps trailing bytes as they are
        photo_id = (await (await api.upload(data)).json())["photo_id"]
        got = await api.http.get(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
        original_url = (await got.json())["original_url"]

        blobs = api.state.blobs
        closed: list[str] = []
        open_stream = blobs.open_stream

        async def watched(key: str, *, start: int = 0) -> tuple[BlobInfo, AsyncIterator[bytes]]:
            info, body = await open_stream(key, start=start)

            async def stream() -> AsyncIterator[bytes]:
                try:
                    async for chunk in body:
                        yield chunk
                finally:
                    closed.append(key)

            return info, stream()

        before = _count_500s()
        api.state.blobs = _Watched(blobs, watched)  # type: ignore[assignment]
        try:
            with caplog.at_level(logging.INFO, "filmstrip"):
                head = await _read_headers_then_reset(api.url, original_url)
                assert head.startswith(b"HTTP/1.1 200")
                for _ in range(200):  # until the api's handler has ended
                    if closed:
                        break
                    await asyncio.sleep(0.05)
        finally:
            api.state.blobs = blobs
        assert closed == [f"originals/{photo_id}"]
        await asyncio.sleep(0.2)  # the access log line follows the handler
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
        assert _count_500s() == before
        # The api serves the next request as ever.
        again = await api.http.get(f"{api.url}{original_url}")
        assert again.status == 200 and len(await again.read()) == len(data)


class _Watched:
    """The api's blob store with ``open_stream`` replaced (everything else passes through)."""

    def __init__(self, store: BlobStore, open_stream: object) -> None:
        self._store = store
        self.open_stream = open_stream

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_what_cannot_be_downloaded_is_a_404_with_its_code(api: Api) -> None:
    """A derivative not made yet and an original gone from the store are each a JSON 404 a
    client can tell apart, not a 500."""
    photo_id = await uploaded(api)

    async def code_of(path: str) -> str:
        resp = await api.http.get(f"{api.url}{path}", headers=api.auth)
        body = await resp.json()
        assert resp.status == 404, body
        return str(body["error"]["code"])

    assert await code_of(f"/v1/photos/{photo_id}/derivatives/preview") == "derivative_not_found"
    await api.state.blobs.delete(f"originals/{photo_id}")
    assert await code_of(f"/v1/photos/{photo_id}/original") == "blob_not_found"
