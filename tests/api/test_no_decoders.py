"""The api process never loads libvips or the HEIC decoder: it tells formats apart by their
first bytes (protocols/formats.py) and decides jobs from the pipeline's plan, both plain
Python. Checked in a real ``filmstrip api`` process, after an upload of each kind."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from bench.redis_server import RedisServer
from filmstrip.catalog import catalog_for_url
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import Role, Supervisor, env_without_filmstrip
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import sqlite_url
from tests.api.factories import fake_jpeg
from tests.support import postgres

ROOT = Path(__file__).resolve().parents[2]

# `filmstrip api`, writing the names of every module it imported when it exits.
PROGRAM = """
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
from filmstrip.services.cli.main import main
sys.exit(main(["api"]))
"""

DECODERS = ("pyvips", "pillow_heif", "PIL")
# A HEIC's ftyp box: the api keeps it by these bytes alone (it never decodes a photo).
HEIC_HEAD = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"


async def _token(database_url: str) -> str:
    catalog = catalog_for_url(database_url)
    await catalog.connect()
    try:
        return (await issue_token(catalog, "alice", admin=False))[1]
    finally:
        await catalog.close()


async def _upload_each_way(url: str, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("file", HEIC_HEAD + os.urandom(200), filename="a.heic")
        resp = await http.post(f"{url}/v1/photos", data=form, headers=auth)
        assert resp.status == 201, await resp.text()
        data = fake_jpeg()
        tus = {
            **auth,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Content-Type": "application/offset+octet-stream",
        }
        resp = await http.post(f"{url}/v1/uploads", data=data, headers=tus)
        assert resp.status == 201, await resp.text()
        assert resp.headers["Filmstrip-Photo-Id"]


def test_the_api_process_loads_no_decoder(redis_server: RedisServer, tmp_path: Path) -> None:
    settings = postgres.role_catalog_settings()
    database_url = settings.get("database_url") or sqlite_url(str(tmp_path / "filmstrip.db"))
    token = asyncio.run(_token(database_url))
    port = free_port()
    env = {
        **env_without_filmstrip(),
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "FILMSTRIP_DATA_DIR": str(tmp_path),
        "FILMSTRIP_REDIS_URL": redis_server.url,
        "FILMSTRIP_DATABASE_URL": database_url,
        "PORT": str(port),
    }
    modules, log = tmp_path / "modules.txt", tmp_path / "api.log"
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-c", PROGRAM, str(modules)]
    supervisor = Supervisor([Role("api", argv, env, f"{url}/readyz", log, cwd=ROOT)])
    try:
        supervisor.start()
        supervisor.wait_ready(timeout=30)
        asyncio.run(_upload_each_way(url, token))
    finally:
        supervisor.stop(timeout=30)
    proc = supervisor.process("api")
    assert proc is not None
    assert proc.returncode == 0, log.read_text()[-2000:]
    loaded = modules.read_text().split()
    assert "filmstrip.services.api.uploads" in loaded and "filmstrip.protocols.formats" in loaded
    assert [m for m in loaded if m.split(".")[0] in DECODERS] == []
