"""``DELETE /v1/photos/{id}`` reaches the client's other devices: the api publishes
``photo.deleted`` to the client's room after the row is gone (a real api and bus over a
real Redis, in this process), and a replay that brings the photo's events ends with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from filmstrip.embedded.redis_server import free_port
from filmstrip.errors import TemporaryError
from filmstrip.photos import lifecycle
from filmstrip.protocols import events as ev
from filmstrip.redis_client import RedisClient
from filmstrip.services.bus.app import create_app as create_bus
from tests.api.conftest import Api, api_settings, running_api
from tests.bus.support import BusClient

JPEG = b"\xff\xd8\xff\xe0 a photo to delete"


@asynccontextmanager
async def api_and_bus(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[Api, str]]:
    """An api (no worker: only the api's own events) and a bus on one Redis and catalog."""
    bus_port = free_port()
    settings = api_settings(tmp_path, redis_url, bus_port=str(bus_port))
    bus = web.AppRunner(create_bus(settings), handle_signals=False, shutdown_timeout=2)
    await bus.setup()
    await web.TCPSite(bus, "127.0.0.1", bus_port).start()
    try:
        async with running_api(settings, "phone") as api:
            yield api, f"ws://127.0.0.1:{bus_port}/ws"
    finally:
        await bus.cleanup()


async def _socket(http: ClientSession, url: str, token: str, **identify: Any) -> BusClient:
    client = BusClient(await http.ws_connect(url))
    await client.identify(token, **identify)
    return client


async def _upload(api: Api, data: bytes = JPEG) -> str:
    resp = await api.upload(data)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["photo_id"])


async def _delete(api: Api, photo_id: str) -> None:
    resp = await api.http.delete(f"{api.url}/v1/photos/{photo_id}", headers=api.auth)
    assert resp.status == 204, await resp.text()


async def test_a_deletion_reaches_every_socket_of_the_client_and_no_other(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    async with api_and_bus(tmp_path, redis_url) as (api, bus), ClientSession() as http:
        laptop = await _socket(http, bus, api.token)
        phone = await _socket(http, bus, api.token)  # the second device
        stranger = await _socket(http, bus, await api.new_token())
        photo_id = await _upload(api)
        for device in (laptop, phone):
            assert [m["event"] for m in await device.events(1)] == [ev.PHOTO_UPLOADED]
        await _delete(api, photo_id)
        for device in (laptop, phone):
            [deleted] = await device.events(1)
            assert (deleted["type"], deleted["event"], deleted["photo_id"]) == (
                "deletion.event", ev.PHOTO_DELETED, photo_id
            )  # fmt: skip
            assert deleted["data"] == {"photo_id": photo_id, "status": "deleted"}
            await device.barrier()  # once
        # Both sockets have it: one the other client's socket were sent would be here too.
        await stranger.barrier()


async def test_a_replay_from_before_the_deletion_ends_with_it(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    async with api_and_bus(tmp_path, redis_url) as (api, bus), ClientSession() as http:
        first = await http.ws_connect(bus)
        before = (await BusClient(first).identify(api.token))["last_event_id"]
        await first.close()  # the device goes offline
        photo_id = await _upload(api)
        await _delete(api, photo_id)
        back = BusClient(await http.ws_connect(bus))
        await back.send({"type": "identify", "token": api.token, "last_event_id": before})
        await back.expect("identified")
        replayed = [(m["event"], m["photo_id"]) for m in await back.events(2)]
        assert replayed == [(ev.PHOTO_UPLOADED, photo_id), (ev.PHOTO_DELETED, photo_id)]
        assert (await back.expect("resumed"))["replayed"] == 2


async def test_a_deletion_whose_event_cannot_be_published_still_deletes(
    redis_url: str, redis: RedisClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "DELETION_RETRY_S", (0.01,))
    async with api_and_bus(tmp_path, redis_url) as (api, _bus):
        photo_id = await _upload(api)
        tries = []

        async def down(*args: Any, **kwargs: Any) -> str:
            tries.append(args)
            raise TemporaryError("redis is down", code="redis_unavailable")

        monkeypatch.setattr(api.state.photos.events, "publish", down)
        await _delete(api, photo_id)
        assert len(tries) == 2  # retried once, then given up
        assert await api.state.catalog.get_photo(photo_id) is None
