"""Roles that share no disk: two api processes and a worker, each with a data dir of its
own, meeting only in Redis, a PostgreSQL catalog and S3 (moto). One tus upload's PATCHes
alternate between the two apis, one of them cut and resumed on the other; the photo is
processed, and a URL one api signed is served by the other."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import pyvips

from bench.moto_server import MotoServer
from bench.redis_server import RedisServer
from filmstrip.catalog import catalog_for_url
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import Role, Supervisor, env_without_filmstrip
from filmstrip.services.cli.tokens import issue_token
from tests.support import postgres
from tests.support.stack import ROOT, procfile_commands

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
MIB = 1024 * 1024


@dataclass
class Hosts:
    """Two api processes and a worker, each on a data dir of its own."""

    apis: list[str]
    token: str
    data_dirs: list[Path]
    procs: list[subprocess.Popen[bytes]]


def _photo() -> bytes:
    """A real photo larger than an S3 part (8 MiB): a PNG of colour noise, ~11 MiB."""
    bands = [
        pyvips.Image.gaussnoise(2200, 1700, sigma=80, mean=128).cast("uchar") for _ in range(3)
    ]
    image = bands[0].bandjoin(bands[1:]).copy(interpretation="srgb")
    data: bytes = image.write_to_buffer(".png", compression=1)
    assert len(data) > 10 * MIB
    return data


async def _token(database_url: str) -> str:
    catalog = catalog_for_url(database_url)
    await catalog.connect()
    try:
        _client, token = await issue_token(catalog, "roaming-client", admin=False)
    finally:
        await catalog.close()
    return token


@pytest.fixture
def hosts(tmp_path: Path, redis_server: RedisServer, moto_server: MotoServer) -> Iterator[Hosts]:
    reason = postgres.unreachable()
    if reason:
        pytest.skip(reason)
    database_url = postgres.create_database()
    token = asyncio.run(_token(database_url))
    shared = {
        "FILMSTRIP_REDIS_URL": redis_server.url,
        "FILMSTRIP_DATABASE_URL": database_url,
        "FILMSTRIP_BLOB_URL": f"s3://no-shared-disk-{uuid.uuid4().hex[:8]}",
        "FILMSTRIP_S3_ENDPOINT_URL": moto_server.url,
        "FILMSTRIP_S3_ACCESS_KEY_ID": "test",
        "FILMSTRIP_S3_SECRET_ACCESS_KEY": "test",
        "FILMSTRIP_MAX_UPLOAD_BYTES": str(64 * MIB),
        "FILMSTRIP_WORKER_CONCURRENCY": "1",
        "FILMSTRIP_PIPELINE_THREADS": "1",
        "FILMSTRIP_LOG_JSON": "false",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
    }
    commands = procfile_commands()
    apis: list[str] = []
    data_dirs: list[Path] = []
    roles: list[Role] = []
    for role in ("web", "web", "worker"):
        data = tmp_path / f"{role}-{len(data_dirs)}"
        data.mkdir()
        data_dirs.append(data)
        env = {**env_without_filmstrip(), **shared, "FILMSTRIP_DATA_DIR": str(data)}
        health = None
        if role == "web":
            port = free_port()
            env["PORT"] = str(port)
            apis.append(f"http://127.0.0.1:{port}")
            health = f"{apis[-1]}/readyz"
        else:
            env["FILMSTRIP_WORKER_METRICS_PORT"] = str(free_port())
        roles.append(Role(data.name, commands[role], env, health, data / "role.log", cwd=ROOT))
    supervisor = Supervisor(roles)
    try:
        supervisor.start()
        supervisor.wait_ready(timeout=60)
        procs = [p for name in supervisor.names if (p := supervisor.process(name))]
        yield Hosts(apis=apis, token=token, data_dirs=data_dirs, procs=procs)
    finally:
        supervisor.stop(timeout=30)
        for data in data_dirs:
            print(f"--- {data.name}\n" + (data / "role.log").read_text(errors="replace")[-3000:])
        postgres.drop_database(database_url)


@pytest.fixture
async def http(hosts: Hosts) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {hosts.token}"}) as s:
        yield s


async def _patch(http: aiohttp.ClientSession, url: str, offset: int, data: bytes) -> int:
    resp = await http.patch(url, data=data, headers={**PATCH, "Upload-Offset": str(offset)})
    assert resp.status == 204, await resp.text()
    return int(resp.headers["Upload-Offset"])


async def _offset(http: aiohttp.ClientSession, url: str) -> int:
    resp = await http.head(url, headers=TUS)
    assert resp.status == 200
    return int(resp.headers["Upload-Offset"])


async def _cut_patch(url: str, token: str, offset: int, total: int, sent: bytes) -> None:
    """A PATCH that promises ``total`` bytes, sends ``sent`` and hangs up."""
    parts = urlsplit(url)
    _reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {total}\r\n\r\n"
        ).encode()
        + sent
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_one_tus_upload_across_two_api_processes_that_share_no_disk(
    hosts: Hosts, http: aiohttp.ClientSession
) -> None:
    one, two = hosts.apis
    data = await asyncio.to_thread(_photo)
    resp = await http.post(f"{one}/v1/uploads", headers={**TUS, "Upload-Length": str(len(data))})
    assert resp.status == 201, await resp.text()
    path = resp.headers["Location"]

    # Alternating: the second PATCH reads the tail the first one left in S3.
    assert await _patch(http, one + path, 0, data[: 3 * MIB]) == 3 * MIB
    assert await _patch(http, two + path, 3 * MIB, data[3 * MIB : 6 * MIB]) == 6 * MIB
    # Cut on the first api past the first part's end (8 MiB): what arrived is kept.
    arrived = 10 * MIB + 4321
    await _cut_patch(one + path, hosts.token, 6 * MIB, len(data) - 6 * MIB, data[6 * MIB : arrived])
    deadline = time.monotonic() + 30
    while await _offset(http, two + path) != arrived:
        assert time.monotonic() < deadline, "the cut PATCH was not committed"
        await asyncio.sleep(0.1)
    # Resumed on the other api at exactly that offset; it finishes the upload.
    resp = await http.patch(
        two + path, data=data[arrived:], headers={**PATCH, "Upload-Offset": str(arrived)}
    )
    assert resp.status == 204, await resp.text()
    photo_id = resp.headers["Filmstrip-Photo-Id"]
    assert (await http.head(one + path, headers=TUS)).headers["Filmstrip-Photo-Id"] == photo_id

    # Processed by the worker (a third data dir).
    deadline = time.monotonic() + 120
    while True:
        photo = await (await http.get(f"{one}/v1/photos/{photo_id}")).json()
        if photo["status"] == "completed":
            break
        assert photo["status"] in ("queued", "processing"), photo
        assert time.monotonic() < deadline, photo
        await asyncio.sleep(0.3)
    assert photo["bytes"] == len(data) and photo["content_type"] == "image/png"
    assert photo["sha256"] == hashlib.sha256(data).hexdigest()
    assert {d["name"] for d in photo["derivatives"]} >= {"thumbnail", "preview"}

    # A URL the first api signed is served by the second, without a token.
    async with aiohttp.ClientSession() as anonymous:
        original = await anonymous.get(two + photo["original_url"])
        assert original.status == 200
        assert await original.read() == data

    # Nothing of it on any host's disk.
    for data_dir in hosts.data_dirs:
        assert not (data_dir / "uploads").exists() or not any((data_dir / "uploads").iterdir())
        assert not (data_dir / "signing.key").exists()
