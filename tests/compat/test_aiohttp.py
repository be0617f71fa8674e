"""The aiohttp internals ``filmstrip/compat/aiohttp.py`` relies on: this fails loudly
when an aiohttp upgrade moves them, so the JSON refusals cannot silently turn back into
plain text."""

from __future__ import annotations

import asyncio
import inspect
import logging

import aiohttp
import pytest
from aiohttp import StreamReader, web
from aiohttp.base_protocol import BaseProtocol

from filmstrip.compat import aiohttp as aiohttp_compat
from filmstrip.compat.aiohttp import JsonErrorRunner, buffered_body, refusal_reason
from filmstrip.embedded.redis_server import free_port
from tests.security.raw_http import exchange


def test_aiohttp_is_the_release_the_internals_were_read_from() -> None:
    assert aiohttp.__version__.startswith(aiohttp_compat.AIOHTTP_VERSION + "."), (
        f"aiohttp {aiohttp.__version__}: re-read RequestHandler.handle_error, Server.__call__"
        ", AppRunner._make_server and StreamReader._read_nowait, then update"
        " src/filmstrip/compat/aiohttp.py"
    )


def test_the_internals_have_the_shape_the_compat_module_uses() -> None:
    params = list(inspect.signature(web.RequestHandler.handle_error).parameters)
    assert params == ["self", "request", "status", "exc", "message"]
    assert inspect.iscoroutinefunction(web.AppRunner._make_server)
    assert "RequestHandler(self" in inspect.getsource(web.Server.__call__)
    assert "self.handle_error(" in inspect.getsource(web.RequestHandler._make_error_handler)
    assert list(inspect.signature(StreamReader._read_nowait).parameters) == ["self", "n"]


async def test_buffered_body_keeps_what_arrived_before_the_peer_went_away() -> None:
    loop = asyncio.get_running_loop()
    body = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    body.feed_data(b"first ")
    body.feed_data(b"second")
    body.set_exception(ConnectionResetError("the peer went away"))
    with pytest.raises(ConnectionResetError):
        await body.read(1)  # every public read raises first
    assert buffered_body(body) == b"first second"
    assert buffered_body(body) == b""


async def test_the_runner_serves_with_json_refusals_and_keeps_its_options(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug past every middleware")

    app = web.Application()
    app.router.add_get("/broken", broken)
    runner = JsonErrorRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}"
        refused = await exchange(url, b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
        assert (refused.status, refused.error()["code"]) == (400, "bad_request")
        bug = await exchange(url, b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (bug.status, bug.error()["code"]) == (500, "internal")
        # Our bug keeps its ERROR and traceback; the client's malformed request does not.
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info is not None
        # The runner's keyword arguments still reach each connection (keep-alive timeout).
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            assert await _reader.read(1) == b""
        writer.close()
    finally:
        await runner.cleanup()


def test_refusal_reason_drops_the_quoted_bytes() -> None:
    assert refusal_reason("Duplicate Content-Length:\n\n  b'Content-Length: 2'\n  ^") == (
        "Duplicate Content-Length"
    )
    assert refusal_reason("Got more than 8190 bytes when reading: bytearray(b'/aaaa')") == (
        "Got more than 8190 bytes when reading"
    )
    assert refusal_reason("Bad \udcff thing") == "Bad \\udcff thing"
