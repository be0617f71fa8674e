"""Pages, static files and the public config, served by a real api on loopback."""

from __future__ import annotations

import asyncio
import html
import os
import re
import shlex
import sys
from pathlib import Path

from filmstrip.embedded.supervisor import env_without_filmstrip
from filmstrip.services.api.web import STATIC
from tests.web.conftest import WebApi

ROOT = Path(__file__).resolve().parents[2]


async def test_gallery_and_dashboard_pages_are_served_with_a_strict_csp(api: WebApi) -> None:
    pages = (
        ("/", "gallery.js"),
        # A photo's own address is the gallery page, which opens it (a link to share).
        ("/photos/0b6c3d4e-1f2a-4b5c-8d9e-0f1a2b3c4d5e", "gallery.js"),
        ("/dashboard", "dashboard.js"),
    )
    for path, marker in pages:
        resp = await api.http.get(f"{api.url}{path}")
        assert resp.status == 200
        assert resp.content_type == "text/html"
        html = await resp.text()
        assert f'src="/static/js/{marker}"' in html
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["X-Trace-Id"]


async def test_every_module_a_page_imports_is_served_as_javascript(api: WebApi) -> None:
    # Walk the import graph from the entry points: a missing or misnamed module would
    # only show in a browser otherwise.
    pending, seen = ["gallery.js", "dashboard.js"], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        resp = await api.http.get(f"{api.url}/static/js/{name}")
        assert resp.status == 200, name
        assert resp.content_type in ("text/javascript", "application/javascript"), name
        source = await resp.text()
        pending += re.findall(r'from "\./([\w-]+\.js)"', source)
    assert {"api.js", "bus.js", "thumbhash.js", "chart.js"} <= seen
    css = await api.http.get(f"{api.url}/static/css/app.css")
    assert css.status == 200 and css.content_type == "text/css"


async def test_static_files_do_not_leak_outside_their_folder(api: WebApi) -> None:
    resp = await api.http.get(f"{api.url}/static/../web.py")
    assert resp.status in (403, 404)
    resp = await api.http.get(f"{api.url}/static/%2e%2e/web.py")
    assert resp.status in (403, 404)
    assert (STATIC / "index.html").is_file()


async def test_missing_files_and_routes_answer_in_the_json_error_shape(api: WebApi) -> None:
    for method, path, status, code in (
        ("GET", "/static/css/nope.css", 404, "not_found"),
        ("GET", "/static/../web.py", 404, "not_found"),
        ("GET", "/nowhere", 404, "not_found"),
        ("DELETE", "/", 405, "method_not_allowed"),
        # Under /v1 a caller without a token learns nothing, not even what is no route.
        ("GET", "/v1/nowhere", 401, "unauthorized"),
        ("DELETE", "/v1/config", 401, "unauthorized"),
    ):
        resp = await api.http.request(method, f"{api.url}{path}")
        assert resp.content_type == "application/json", (path, await resp.text())
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (status, code), (path, body)
        assert body["error"]["message"]


async def test_config_is_public_and_points_at_the_bus_on_the_callers_host(api: WebApi) -> None:
    resp = await api.http.get(f"{api.url}/v1/config")
    assert resp.status == 200
    assert await resp.json() == {"bus_url": "ws://127.0.0.1:18081/ws", "queue": "photo-processing"}
    resp = await api.http.get(
        f"{api.url}/v1/config",
        headers={"Host": "photos.example:8080", "X-Forwarded-Proto": "https"},
    )
    assert (await resp.json())["bus_url"] == "wss://photos.example:18081/ws"


async def test_docs_page_and_only_the_assets_it_loads_are_served_without_a_token(
    api: WebApi,
) -> None:
    resp = await api.http.get(f"{api.url}/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    # Every script and style the page names is ours, on this server.
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(ref.startswith(("/docs/assets/", "/static/")) for ref in refs), refs
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    for ref in refs:
        asset = await api.http.get(f"{api.url}{ref}")
        assert asset.status == 200, ref
    bundle = await api.http.get(f"{api.url}/docs/assets/swagger-ui-bundle.js")
    assert bundle.content_type in ("text/javascript", "application/javascript")
    assert b"SwaggerUIBundle" in await bundle.read()
    # Only the listed files: not the rest of the wheel, nor anything beside it.
    for name in ("swagger-editor-bundle.js", "..%2F__init__.py", "%2e%2e%2fcore.py"):
        refused = await api.http.get(f"{api.url}/docs/assets/{name}")
        assert refused.status == 404, name


async def test_each_command_a_page_tells_the_reader_to_run_works_as_shown(api: WebApi) -> None:
    # The dashboard's sign-in said `filmstrip token create --admin`, which fails (the
    # client's name is required): a new operator pasting it got a usage error.
    shown = []
    for path in ("/", "/dashboard"):
        page = await (await api.http.get(f"{api.url}{path}")).text()
        shown += [
            html.unescape(code) for code in re.findall(r"<code>(filmstrip [^<]*)</code>", page)
        ]
    assert any("--admin" in command for command in shown), shown  # the dashboard's
    env = env_without_filmstrip()
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    env["FILMSTRIP_DATA_DIR"] = api.settings.files.data_dir  # this api's catalog
    if api.settings.catalog.database_url:
        env["FILMSTRIP_DATABASE_URL"] = api.settings.catalog.database_url
    for command in shown:
        argv = [re.sub(r"^<[\w -]+>$", "carol", arg) for arg in shlex.split(command)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "filmstrip.services.cli.main", *argv[1:], env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, (command, err.decode())
        assert out.strip(), command  # the token it printed
