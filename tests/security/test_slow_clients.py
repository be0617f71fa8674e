"""Slowloris: connections that trickle or stall their headers or body are cut."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson

from tests.api.conftest import Api
from tests.security.conftest import MakeApi

BOUNDARY = "slowboundary"
# Generous bounds: the server's timeouts are 0.5-1 s; these only stop a hung test.
WAIT_S = 10.0


async def _open(api: Api) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(api.url)
    assert url.hostname is not None and url.port is not None
    return await asyncio.open_connection(url.hostname, url.port)


def _upload_head(api: Api, length: int) -> bytes:
    return (
        f"POST /v1/photos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _part_head() -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, object]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body: dict[str, object] = orjson.loads(await reader.readexactly(length))
    return status, body


async def _response_to_a_trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, dict[str, object]]:
    """The answer to a body that goes on at 100 bytes every 20 ms (5 kB/s): never idle, far
    below any floor the tests set."""

    async def trickle() -> None:
        try:
            while True:
                writer.write(b"\x00" * 100)
                await writer.drain()
                await asyncio.sleep(0.02)
        except ConnectionError:
            pass

    sender = asyncio.create_task(trickle())
    try:
        return await _response(reader)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def _closed(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (it sent nothing). Its close shows as
    EOF, a reset, or (when our last write hit the closed socket) a broken pipe."""
    try:
        return await asyncio.wait_for(reader.read(1), WAIT_S) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


async def _nothing_left(api: Api) -> None:
    assert api.blob_files() == []
    assert await api.photo_count() == 0
    assert await api.waiting_jobs() == 0


async def test_trickled_headers_are_cut(make_api: MakeApi) -> None:
    api = await make_api(api_header_timeout_s="0.5")
    reader, writer = await _open(api)
    head = _upload_head(api, 1000)
    sent = 0
    try:
        # A byte every 50 ms: it never goes idle, it just never finishes its headers.
        while sent < len(head):
            writer.write(head[sent : sent + 1])
            await writer.drain()
            sent += 1
            if reader.at_eof():
                break
            await asyncio.sleep(0.05)
    except ConnectionError:
        pass
    assert sent < len(head), "the server waited for all the trickled headers"
    assert await _closed(reader)
    writer.close()


async def test_silent_connection_is_cut(make_api: MakeApi) -> None:
    api = await make_api(api_header_timeout_s="0.5")
    reader, writer = await _open(api)
    assert await _closed(reader)
    writer.close()


async def test_keepalive_connection_serves_then_cuts_a_slow_second_request(
    make_api: MakeApi,
) -> None:
    api = await make_api(api_header_timeout_s="0.5")
    reader, writer = await _open(api)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _ = await _response(reader)
    assert status == 200
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # ... and the rest never comes
    assert await _closed(reader)
    writer.close()


async def test_stalled_upload_body_is_408_and_leaves_nothing(make_api: MakeApi) -> None:
    api = await make_api(upload_idle_timeout_s="0.5", upload_min_bytes_per_s="0")
    reader, writer = await _open(api)
    body_start = _part_head() + b"\xff\xd8\xff\xe0" + b"\x00" * 4000
    writer.write(_upload_head(api, len(body_start) + 100_000) + body_start)
    await writer.drain()
    # ... then nothing more.
    status, body = await _response(reader)
    assert status == 408
    assert body["error"] == {
        "code": "request_timeout",
        "message": "no bytes of the request body arrived for 0.5 s",
    }
    writer.close()
    await _nothing_left(api)


async def test_trickled_upload_body_is_408_and_leaves_nothing(make_api: MakeApi) -> None:
    api = await make_api(upload_idle_timeout_s="0.5", upload_min_bytes_per_s="100000")
    reader, writer = await _open(api)
    writer.write(_upload_head(api, 300_000) + _part_head() + b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    await writer.drain()

    status, body = await _response_to_a_trickle(reader, writer)
    assert status == 408
    error = body["error"]
    assert isinstance(error, dict) and error["code"] == "request_timeout"
    assert "below the minimum of 100000" in error["message"]
    writer.close()
    await _nothing_left(api)


async def test_a_fast_start_does_not_buy_a_trickle(make_api: MakeApi) -> None:
    """The floor is on the average since the body began: bytes sent up front stop counting
    for a client once it then trickles long enough to fall under it."""
    api = await make_api(upload_idle_timeout_s="0.5", upload_min_bytes_per_s="100000")
    reader, writer = await _open(api)
    # 150 kB at once, then 5 kB/s: under the floor on average after about 1.6 s.
    start = _part_head() + b"\xff\xd8\xff\xe0" + b"\x00" * 150_000
    writer.write(_upload_head(api, 300_000) + start)
    await writer.drain()

    status, body = await _response_to_a_trickle(reader, writer)
    assert status == 408
    error = body["error"]
    assert isinstance(error, dict) and "below the minimum of 100000" in error["message"]
    writer.close()
    await _nothing_left(api)


async def test_a_body_above_the_floor_is_taken_however_long_it_streams(
    make_api: MakeApi,
) -> None:
    """Small writes at a good pace, for longer than the idle timeout: every byte counts
    towards the average, not only the latest read."""
    api = await make_api(upload_idle_timeout_s="0.3", upload_min_bytes_per_s="20000")
    reader, writer = await _open(api)
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    chunks = [_part_head() + b"\xff\xd8\xff\xe0"] + [b"\x00" * 2000] * 40 + [tail]
    writer.write(_upload_head(api, sum(map(len, chunks))))
    for chunk in chunks:  # 2 kB every 20 ms: about 100 kB/s for 0.8 s
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.02)
    status, body = await _response(reader)
    assert status == 201, body
    writer.close()


async def test_the_first_bytes_count_towards_the_average_too(make_api: MakeApi) -> None:
    """The bytes read to sniff the type (up to 256 KiB) are body bytes like the rest: a
    client that sent most of its file at once and the rest more slowly averages well
    above the floor and is not cut."""
    api = await make_api(upload_idle_timeout_s="0.5", upload_min_bytes_per_s="100000")
    reader, writer = await _open(api)
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    start = _part_head() + b"\xff\xd8\xff\xe0" + b"\x00" * 340_000
    rest = [b"\x00" * 5_000] * 10  # 25 kB/s for 2 s: under the floor on its own
    writer.write(_upload_head(api, len(start) + 50_000 + len(tail)) + start)
    await writer.drain()
    for chunk in rest:
        await asyncio.sleep(0.2)
        writer.write(chunk)
        await writer.drain()
    writer.write(tail)
    await writer.drain()
    status, body = await _response(reader)
    assert status == 201, body  # 390 kB in 2 s: about 195 kB/s on average
    writer.close()
