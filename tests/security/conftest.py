"""An api with the protections' knobs turned down, on a real loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from filmstrip.embedded.redis_server import free_port
from filmstrip.redis_client import RedisClient
from filmstrip.services.api.app import create_app
from filmstrip.services.api.serving import api_runner
from filmstrip.services.api.state import STATE
from filmstrip.services.cli.tokens import issue_token
from tests.api.conftest import Api, api_settings

# The bus's fixtures (a bus on a loopback port, accounts, WebSocket clients), shared so the
# isolation and limit tests speak to the same bus as tests/bus; a module may override
# ``bus_settings`` to tighten limits.
from tests.bus.conftest import (  # noqa: F401
    bus,
    bus_process,
    bus_settings,
    catalog,
    connect,
    http,
    make_account,
    publisher,
    start_bus,
)

MakeApi = Callable[..., Awaitable[Api]]


async def error_of(resp: aiohttp.ClientResponse, status: int, code: str) -> dict[str, str]:
    """The JSON error body of ``resp``, asserting its status and code."""
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
async def make_api(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[MakeApi]:
    """Factory: an api with extra settings (``name=value`` as in ``FILMSTRIP_NAME``), served
    the way ``filmstrip.services.api.main`` serves it (``api_runner``)."""
    runners: list[web.AppRunner] = []
    async with aiohttp.ClientSession() as session:
        test_redis_url = redis_url

        async def make(redis_url: str | None = None, **extra: str) -> Api:
            settings = api_settings(
                tmp_path / f"api{len(runners)}",
                redis_url or test_redis_url,
                max_upload_bytes="400000",
                **extra,
            )
            runner = api_runner(
                create_app(settings, background=False), settings, shutdown_timeout=1
            )
            await runner.setup()
            runners.append(runner)
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            state = runner.app[STATE]
            _client, token = await issue_token(state.catalog, "alice", admin=False)
            return Api(
                url=f"http://127.0.0.1:{port}", token=token, settings=settings, state=state,
                http=session,
            )  # fmt: skip

        yield make
        for runner in runners:
            await runner.cleanup()
