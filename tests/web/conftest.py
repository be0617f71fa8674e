"""The api in-process on a loopback port (as in tests/api), plus an admin token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bench.redis_server import RedisServer
from filmstrip.services.api.state import STATE
from filmstrip.services.cli.tokens import issue_token
from tests.api.conftest import Api, api_settings, start_api


class WebApi(Api):
    admin_token: str = ""

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@pytest.fixture
async def api(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[WebApi]:
    settings = api_settings(tmp_path, redis_server.url, bus_port="18081")
    runner, url = await start_api(settings)
    state = runner.app[STATE]
    _client, token = await issue_token(state.catalog, "alice", admin=False)
    _admin, admin = await issue_token(state.catalog, "ops", admin=True)
    async with aiohttp.ClientSession() as http:
        web_api = WebApi(url=url, token=token, settings=settings, state=state, http=http)
        web_api.admin_token = admin
        yield web_api
    await runner.cleanup()
