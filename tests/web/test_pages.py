"""Pages, static files and the public config, served by a real api on loopback."""

from __future__ import annotations

import re

from filmstrip.services.api.web import STATIC
from tests.web.conftest import WebApi


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
