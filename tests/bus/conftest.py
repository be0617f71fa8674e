"""Fixtures for the bus: a catalog with clients and tokens, the bus on a real loopback port,
real WebSocket clients, and bus processes run as subprocesses."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from filmstrip.auth import new_token
from filmstrip.catalog import Catalog, PhotoRecord, open_catalog, utcnow
from filmstrip.embedded.redis_server import free_port
from filmstrip.events import EventPublisher
from filmstrip.redis_client import RedisClient
from filmstrip.services.bus.app import create_app
from filmstrip.settings import Settings, sqlite_url
from tests.bus.support import Account, BusClient, BusProcess, RunningBus
from tests.support import postgres
from tests.support.settings import replace_settings


@pytest.fixture
def bus_settings(redis_url: str, redis_kind: str, tmp_path: Path) -> Settings:
    """Settings with short timeouts so the tests stay quick."""
    return replace_settings(
        Settings(),
        data_dir=str(tmp_path),
        redis_url=redis_url,
        redis_cluster="true" if redis_kind == "cluster" else "false",
        database_url=postgres.role_catalog_settings().get(
            "database_url", sqlite_url(str(tmp_path / "catalog.db"))
        ),
        bus_host="127.0.0.1",
        bus_port=free_port(),
        bus_identify_timeout_s=1.0,
        bus_close_timeout_s=2.0,
        bus_presence_interval_s=0.2,
        log_json=False,
    )


@pytest.fixture
async def catalog(bus_settings: Settings) -> AsyncIterator[Catalog]:
    cat = await open_catalog(bus_settings)
    yield cat
    await cat.close()


@pytest.fixture
def make_account(catalog: Catalog) -> Callable[..., Awaitable[Account]]:
    """Factory: a client with a token, ``sessions`` upload sessions and ``photos`` photos
    (with ``uuids``, session and photo ids are UUIDs as the api makes them, not short ones)."""

    async def make(*, sessions: int = 1, photos: int = 2, uuids: bool = False) -> Account:
        client_id = "c_" + uuid.uuid4().hex[:10]
        await catalog.create_client(client_id, client_id, is_admin=False)
        token, token_hash = new_token()
        await catalog.add_token(token_hash, client_id)
        session_ids = []
        for _ in range(sessions):
            sid = str(uuid.uuid4()) if uuids else "s_" + uuid.uuid4().hex[:10]
            await catalog.create_session(sid, client_id)
            session_ids.append(sid)
        photo_ids = []
        for _ in range(photos):
            pid = str(uuid.uuid4()) if uuids else "p_" + uuid.uuid4().hex[:10]
            await catalog.insert_photo(
                PhotoRecord(
                    id=pid, client_id=client_id, session_id=session_ids[0] if session_ids else None,
                    blob_key=f"originals/{pid}", content_type="image/jpeg", bytes=1, sha256=None,
                    status="queued", job_id=f"photo:{pid}", trace_id=uuid.uuid4().hex,
                    uploaded_at=utcnow(),
                ),
                None,
            )  # fmt: skip
            photo_ids.append(pid)
        return Account(client_id, token, session_ids, photo_ids)

    return make


@pytest.fixture
async def publisher(redis: RedisClient) -> EventPublisher:
    return EventPublisher(redis)


@pytest.fixture
async def start_bus(bus_settings: Settings) -> AsyncIterator[Callable[..., Awaitable[RunningBus]]]:
    """Factory: a bus app on a real loopback port, with settings overridden (stopped after)."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: Any) -> RunningBus:
        settings = replace_settings(bus_settings, bus_port=free_port(), **overrides)
        app = create_app(settings)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, settings.bus.host, settings.bus.port).start()
        return RunningBus(f"ws://{settings.bus.host}:{settings.bus.port}/ws", app, settings)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def bus(start_bus: Callable[..., Awaitable[RunningBus]]) -> str:
    """The bus with the test settings; its ws:// URL."""
    return (await start_bus()).url


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


@pytest.fixture
def connect(http: ClientSession) -> Callable[..., Awaitable[BusClient]]:
    """Factory: a WebSocket client connected to a bus URL (closed with ``http``)."""

    async def open_(url: str, **kwargs: Any) -> BusClient:
        return BusClient(await http.ws_connect(url, **kwargs))

    return open_


@pytest.fixture
def bus_process(bus_settings: Settings) -> Iterator[Callable[..., BusProcess]]:
    """Factory: bus processes on fresh ports sharing Redis and the catalog (stopped after)."""
    started: list[BusProcess] = []

    def start(port: int | None = None) -> BusProcess:
        proc = BusProcess(bus_settings, port or free_port())
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
