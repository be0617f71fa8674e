"""The bus's HTTP answers that are not a WebSocket are errors in the api's JSON shape
(status, ``{"error": {"code", "message"}}``, docs/api.md), never aiohttp's plain text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientSession

from tests.bus.support import RunningBus


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/ws", 400, "websocket_required"),
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/ws", 405, "method_not_allowed"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
    ],
)
async def test_http_errors_are_json(
    start_bus: Callable[..., Awaitable[RunningBus]],
    http: ClientSession,
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    bus = await start_bus()
    async with http.request(method, bus.http + path) as resp:
        assert resp.content_type == "application/json", await resp.text()
        body = await resp.json()
        assert resp.status == status, body
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
        assert body["error"]["code"] == code and body["error"]["message"]
        if status == 405:
            assert {m.strip() for m in resp.headers["Allow"].split(",")} == {"GET", "HEAD"}


async def test_a_refused_handshake_is_a_json_400(
    start_bus: Callable[..., Awaitable[RunningBus]], http: ClientSession
) -> None:
    """An upgrade aiohttp refuses (here: a WebSocket version it does not speak) keeps its
    reason, in the JSON shape."""
    bus = await start_bus()
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "5",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with http.get(bus.http + "/ws", headers=headers) as resp:
        body = await resp.json()
        assert resp.status == 400, body
        assert body == {"error": {"code": "bad_request", "message": "Unsupported version: 5"}}
