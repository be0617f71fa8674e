"""Requests aiohttp's own parser refuses get the bus's JSON error shape, logged at INFO
without a traceback, as the api's do (#21 item 5)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from filmstrip.services.bus.main import serve
from filmstrip.settings import Settings
from tests.security.raw_http import exchange

_REFUSED = {
    "URL over 8190 bytes": b"GET /healthz?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "duplicate Content-Length": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    ),
    "Content-Length with chunked": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
}


async def test_parser_refusals_are_json_400s_without_traceback(
    bus_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(bus_settings, stop))  # the bus process's own runner
    url = f"http://{bus_settings.bus.host}:{bus_settings.bus.port}"
    try:
        async with asyncio.timeout(15):
            while True:
                try:
                    await exchange(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    break
                except OSError:
                    assert not serving.done(), serving
                    await asyncio.sleep(0.05)
        for name, request in _REFUSED.items():
            reply = await exchange(url, request)
            assert (reply.status, reply.error()["code"]) == (400, "bad_request"), name
    finally:
        stop.set()
        await serving
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    refusals = [r for r in caplog.records if r.getMessage() == "refused a malformed request"]
    assert len(refusals) == len(_REFUSED)
    assert {r.levelno for r in refusals} == {logging.INFO}
