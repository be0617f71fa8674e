"""aiohttp's own refusals leave the api in the JSON error shape with what a client needs to
act on them: a 405 says which methods the route takes (``Allow``, RFC 9110 15.5.6)."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/photos", {"GET", "HEAD", "POST"}),
        ("POST", "/v1/sessions/abc", {"GET", "HEAD"}),
        ("DELETE", "/", {"GET", "HEAD"}),
    ],
)
async def test_a_405_names_the_methods_the_route_takes(
    api: Api, method: str, path: str, allowed: set[str]
) -> None:
    resp = await api.http.request(method, f"{api.url}{path}", headers=api.auth)
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (405, "method_not_allowed"), body
    assert body["error"]["message"] == "Method Not Allowed"
    assert {m.strip() for m in resp.headers.get("Allow", "").split(",")} == allowed


async def test_no_route_is_a_json_404(api: Api) -> None:
    resp = await api.http.get(f"{api.url}/nowhere")
    body = await resp.json()
    assert (resp.status, body) == (
        404,
        {"error": {"code": "not_found", "message": "Not Found"}},
    )
