"""CORS as a browser meets it: a page served from another origin (another port) uploads a
photo to the api in Chromium, once as multipart and once through tus, reading the headers
tus needs (Location, Upload-Offset, Filmstrip-Photo-Id); a page on an origin the api does
not list cannot. Only the api runs (as ``filmstrip api``): nothing here needs the others."""

from __future__ import annotations

import asyncio
import base64
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.redis_server import RedisServer
from filmstrip.catalog import catalog_for_url
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import Role, Supervisor, env_without_filmstrip
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import sqlite_url
from tests.support.stack import ROOT, procfile_commands

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no Chromium at {CHROMIUM}; run .ci/install-browser (apt-get install chromium)",
)

# What the page runs: the two uploads a web app makes, with nothing but fetch.
UPLOADS_JS = """
async ({api, token, jpeg}) => {
  const bytes = Uint8Array.from(atob(jpeg), (c) => c.charCodeAt(0));
  const auth = {Authorization: `Bearer ${token}`};
  const form = new FormData();
  form.append("pipeline", "quick_processing");
  form.append("file", new Blob([bytes], {type: "image/jpeg"}), "été.jpg");
  const multipart = await fetch(`${api}/v1/photos`, {method: "POST", headers: auth, body: form});
  const accepted = await multipart.json();

  const tus = {...auth, "Tus-Resumable": "1.0.0"};
  const created = await fetch(`${api}/v1/uploads`, {method: "POST", headers: {...tus,
    "Upload-Length": String(bytes.length), "Upload-Metadata": `filename ${btoa("tus.jpg")}`}});
  const location = created.headers.get("Location");
  const half = Math.floor(bytes.length / 2);
  const patch = (offset, body) => fetch(`${api}${location}`, {method: "PATCH", headers: {...tus,
    "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(offset)}, body});
  const first = await patch(0, bytes.slice(0, half));
  const head = await fetch(`${api}${location}`, {method: "HEAD", headers: tus});
  const last = await patch(Number(head.headers.get("Upload-Offset")), bytes.slice(half));
  return {
    multipart: multipart.status, photo_id: accepted.photo_id,
    created: created.status, location, first: first.status,
    resume_at: head.headers.get("Upload-Offset"), last: last.status,
    tus_photo_id: last.headers.get("Filmstrip-Photo-Id"),
  };
}
"""


@dataclass
class Api:
    url: str
    token: str


class _Pages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_origins(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two origins serving an empty page, on ports of their own: the app's and another."""
    (tmp_path / "index.html").write_text("<!doctype html><title>app</title>")
    handler = functools.partial(_Pages, directory=str(tmp_path))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def api(tmp_path: Path, redis_server: RedisServer, page_origins: tuple[str, str]) -> Iterator[Api]:
    """``filmstrip api`` allowing the first page origin, and a client token."""
    database_url = sqlite_url(str(tmp_path / "filmstrip.db"))

    async def token() -> str:
        catalog = catalog_for_url(database_url)
        await catalog.connect()
        try:
            return (await issue_token(catalog, "web-app", admin=False))[1]
        finally:
            await catalog.close()

    redis_server = RedisServer(appendonly=False)
    redis_server.start()
    port = free_port()
    env = env_without_filmstrip()
    env.update(
        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        FILMSTRIP_DATA_DIR=str(tmp_path),
        FILMSTRIP_DATABASE_URL=database_url,
        FILMSTRIP_REDIS_URL=redis_server.url,
        FILMSTRIP_CORS_ORIGINS=page_origins[0],
        PORT=str(port),
    )
    role = Role(
        "web",
        procfile_commands()["web"],
        env,
        health=f"http://127.0.0.1:{port}/readyz",
        log=tmp_path / "api.log",
        cwd=ROOT,
    )
    supervisor = Supervisor([role])
    try:
        issued = asyncio.run(token())
        supervisor.start()
        supervisor.wait_ready(timeout=60)
        yield Api(url=f"http://127.0.0.1:{port}", token=issued)
    finally:
        supervisor.stop(timeout=10)
        redis_server.cleanup()


def test_a_page_on_another_origin_uploads_by_multipart_and_tus(
    api: Api, page_origins: tuple[str, str], corpus: Path
) -> None:
    jpeg = base64.b64encode((corpus / "real/Canon_EOS_7D.jpg").read_bytes()).decode()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{page_origins[0]}/")
            done = page.evaluate(UPLOADS_JS, {"api": api.url, "token": api.token, "jpeg": jpeg})
            assert done["multipart"] == 201 and done["photo_id"], done
            assert (done["created"], done["first"], done["last"]) == (201, 204, 204), done
            assert done["location"].startswith("/v1/uploads/"), done
            assert int(done["resume_at"]) > 0, done
            # The same bytes: tus found the multipart upload's photo.
            assert done["tus_photo_id"] == done["photo_id"], done

            # The other origin is not listed: the browser refuses the call.
            page.goto(f"{page_origins[1]}/")
            refused = page.evaluate(
                """async ({api, token}) => {
                  try {
                    await fetch(`${api}/v1/photos`, {headers: {Authorization: `Bearer ${token}`}});
                    return "answered";
                  } catch (error) { return error.name; }
                }""",
                {"api": api.url, "token": api.token},
            )
            assert refused == "TypeError"
        finally:
            browser.close()
