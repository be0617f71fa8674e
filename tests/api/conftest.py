"""An api on a real loopback port over the private Redis, a temp SQLite and temp blobs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bench.moto_server import MotoServer
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.embedded.redis_server import free_port
from filmstrip.redis_client import RedisClient
from filmstrip.services.api.app import create_app
from filmstrip.services.api.serving import api_runner
from filmstrip.services.api.state import STATE, ApiState
from filmstrip.services.api.tus.local import LocalTusStore
from filmstrip.services.api.tus.shared import SharedTusStore
from filmstrip.services.api.tus.store import TusStore
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import Settings, load_settings
from tests.support import postgres


@dataclass
class Api:
    url: str
    token: str
    settings: Settings
    state: ApiState
    http: aiohttp.ClientSession

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def new_token(self, name: str | None = None) -> str:
        _client, token = await issue_token(
            self.state.catalog, name or f"client-{uuid.uuid4().hex[:8]}", admin=False
        )
        return token

    async def upload(
        self,
        data: bytes,
        *,
        filename: str = "photo.jpg",
        token: str | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        for key, value in (fields or {}).items():
            form.add_field(key, value)
        form.add_field("file", data, filename=filename, content_type="image/jpeg")
        return await self.http.post(
            f"{self.url}/v1/photos",
            data=form,
            headers={"Authorization": f"Bearer {token or self.token}", **(headers or {})},
        )

    async def blob_keys(self, prefix: str = "") -> list[str]:
        """Every blob under ``prefix``, in any store."""
        return sorted([info.key async for info in self.state.blobs.list(prefix)])

    def blob_files(self) -> list[str]:
        """Every file under the blob root, temp files included (nothing may leak)."""
        root = Path(self.settings.effective_blob_url.removeprefix("file://"))
        if not root.exists():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    async def photo_count(self) -> int:
        rows = await self.state.catalog._fetchall("SELECT COUNT(*) FROM photos")
        return int(rows[0][0])

    async def waiting_jobs(self) -> int:
        counts = await self.state.queue.counts()
        return counts["waiting"] + counts.get("delayed", 0)


#: A sweep's grace that takes every blob: the catalog's clock reads whole milliseconds and a
#: blob's time nanoseconds, so with a grace of 0 one written in the sweep's millisecond is
#: newer than the cutoff and kept (the bounded-batches test saw 9 of 10 swept).
EVERY_BLOB = -1.0


def api_settings(tmp_path: Path, redis_url: str, **extra: str) -> Settings:
    """The api's settings on ``redis_url``; a cluster's URL is recognised as one (the
    setting's default, ``auto``)."""
    env = {
        "FILMSTRIP_DATA_DIR": str(tmp_path),
        "FILMSTRIP_REDIS_URL": redis_url,
        "FILMSTRIP_LOG_JSON": "false",
        **{
            f"FILMSTRIP_{k.upper()}": v
            for k, v in {
                **({} if "database_url" in extra else postgres.role_catalog_settings()),
                **extra,
            }.items()
        },
    }
    return load_settings(env)


async def start_api(
    settings: Settings, *, shutdown_timeout: float = 60.0
) -> tuple[web.AppRunner, str]:
    """An api on a free loopback port; ``runner.cleanup()`` cancels the handlers still
    running ``shutdown_timeout`` seconds after it starts, as a stopping api does."""
    runner = api_runner(
        create_app(settings, background=False), settings, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def running_api(settings: Settings, client_name: str) -> AsyncIterator[Api]:
    """An api on a loopback port with one client's token; stopped on exit."""
    runner, url = await start_api(settings)
    state = runner.app[STATE]
    _client, token = await issue_token(state.catalog, client_name, admin=False)
    try:
        async with aiohttp.ClientSession() as http:
            yield Api(url=url, token=token, settings=settings, state=state, http=http)
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[Api]:
    settings = api_settings(tmp_path, redis_url, max_upload_bytes="400000")
    async with running_api(settings, "alice") as running:
        yield running


@dataclass
class TusBackend:
    """Where partial tus uploads live: ``files`` (a local directory, the embedded mode) or
    ``s3`` (the catalog and an S3 bucket on moto, shared by api processes on any host)."""

    name: str
    settings: dict[str, str]

    def store(self, api: Api, **options: float) -> TusStore:
        """Another store over the same uploads, as another api process has."""
        if self.name == "files":
            return LocalTusStore(api.settings.effective_tus_dir, **options)
        assert isinstance(api.state.blobs, S3BlobStore)
        return SharedTusStore(api.state.catalog, api.state.blobs, **options)

    async def uploads(self, api: Api) -> list[str]:
        """The ids of the uploads the store holds (not its bookkeeping)."""
        if self.name == "files":
            root = api.settings.effective_tus_dir
            return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        rows = await api.state.catalog._fetchall("SELECT id FROM tus_uploads ORDER BY id")
        return [str(r[0]) for r in rows]

    async def leftovers(self, api: Api) -> list[str]:
        """Everything the store holds for partial uploads but its per-client creation locks
        (which stay): files, or objects, open multipart uploads and rows."""
        if self.name == "files":
            root = api.settings.effective_tus_dir
            return sorted(
                str(p.relative_to(root))
                for p in root.rglob("*")
                if p.is_file() and not (p.parent.parent.name == ".clients" and p.name == "lock")
            )
        blobs = api.state.blobs
        assert isinstance(blobs, S3BlobStore)
        found = [info.key async for info in blobs.list("uploads/")]
        found += [f"multipart {key}" async for key, _, _ in blobs.list_parts_uploads("uploads/")]
        return sorted(found + [f"row {u}" for u in await self.uploads(api)])

    async def bytes_held(self, api: Api) -> list[str]:
        """Where the store holds bytes of partial uploads (not their state)."""
        return [
            f
            for f in await self.leftovers(api)
            if f.endswith("/data") or (self.name == "s3" and not f.startswith("row "))
        ]

    async def write_past_offset(self, api: Api, upload_id: str, garbage: bytes) -> None:
        """What a writer that died before committing leaves behind."""
        if self.name == "files":
            with (api.settings.effective_tus_dir / upload_id / "data").open("ab") as f:
                f.write(garbage)
            return
        await api.state.blobs.put_bytes(
            f"uploads/{upload_id}/tail-deadbeef", garbage, content_type="application/octet-stream"
        )


def moto_store(moto: MotoServer, name: str) -> dict[str, str]:
    """Settings of an S3 store on moto (real HTTP), in a bucket of its own."""
    return {
        "blob_url": f"s3://{name}-{uuid.uuid4().hex[:12]}",
        "s3_endpoint_url": moto.url,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test",
    }


@pytest.fixture(params=["files", "s3"])
def tus_backend(request: pytest.FixtureRequest) -> TusBackend:
    """Each tus test runs on both stores (S3 on moto, over real HTTP)."""
    if request.param == "files":
        return TusBackend("files", {})
    return TusBackend("s3", moto_store(request.getfixturevalue("moto_server"), "tus"))


@pytest.fixture(params=["files", "s3"])
async def any_store_api(
    request: pytest.FixtureRequest, redis_url: str, redis: RedisClient, tmp_path: Path
) -> AsyncIterator[Api]:
    """The api over the files store, or over an S3 bucket on moto (real HTTP)."""
    extra: dict[str, str] = {}
    if request.param == "s3":
        extra = moto_store(request.getfixturevalue("moto_server"), "api")
    async with running_api(api_settings(tmp_path, redis_url, **extra), "alice") as running:
        yield running
