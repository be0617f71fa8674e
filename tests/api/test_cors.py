"""CORS on /v1: preflights answered without a token, the allowed origin named on every
answer (errors and streamed files too) with tus's and our headers exposed; nothing for an
origin not listed, nor by default. The browser's view is tests/web/test_cors_browser.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from filmstrip.redis_client import RedisClient
from filmstrip.settings import SettingsError, load_settings
from tests.api.conftest import Api, api_settings, running_api
from tests.api.factories import fake_jpeg

APP = "http://app.example:3000"


@pytest.fixture
async def cors_api(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[Api]:
    settings = api_settings(tmp_path, redis_url, cors_origins=f"{APP}, capacitor://localhost")
    async with running_api(settings, "alice") as running:
        yield running


def _preflight(method: str, headers: str) -> dict[str, str]:
    return {
        "Origin": APP,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.mark.parametrize(
    ("path", "method", "asked"),
    [
        ("/v1/photos", "POST", "authorization,x-content-sha256"),
        ("/v1/photos/0b7e6f3c-0000-4000-8000-000000000000", "DELETE", "authorization"),
        ("/v1/uploads", "POST", "authorization,tus-resumable,upload-length,upload-metadata"),
        ("/v1/uploads/abc", "PATCH", "authorization,tus-resumable,upload-offset,content-type"),
        ("/v1/uploads/abc", "HEAD", "authorization,tus-resumable"),
    ],
)
async def test_a_preflight_is_answered_without_a_token(
    cors_api: Api, path: str, method: str, asked: str
) -> None:
    resp = await cors_api.http.options(f"{cors_api.url}{path}", headers=_preflight(method, asked))
    assert resp.status == 204, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert method in resp.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert set(asked.split(",")) <= allowed
    assert "Origin" in resp.headers["Vary"]


async def test_answers_name_the_origin_and_expose_what_clients_read(cors_api: Api) -> None:
    origin = {"Origin": APP}
    resp = await cors_api.upload(fake_jpeg(), headers=origin)
    assert resp.status == 201
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Tus-Resumable",
            "Tus-Max-Size", "Filmstrip-Photo-Id", "Filmstrip-Duplicate", "X-Trace-Id",
            "Content-Disposition", "Retry-After"} <= exposed  # fmt: skip
    photo_id = (await resp.json())["photo_id"]

    # A streamed file (sent before any middleware sees it) and errors, tokenless too.
    photo = await (await cors_api.http.get(
        f"{cors_api.url}/v1/photos/{photo_id}", headers={**cors_api.auth, **origin}
    )).json()  # fmt: skip
    original = await cors_api.http.get(f"{cors_api.url}{photo['original_url']}", headers=origin)
    assert original.status == 200
    assert original.headers["Access-Control-Allow-Origin"] == APP
    for path, status in (("/v1/photos", 401), ("/v1/nowhere", 401)):
        resp = await cors_api.http.get(f"{cors_api.url}{path}", headers=origin)
        assert resp.status == status
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        assert "Origin" in resp.headers["Vary"]
    tus = await cors_api.http.post(
        f"{cors_api.url}/v1/uploads",
        headers={**cors_api.auth, **origin, "Tus-Resumable": "0.2.0", "Upload-Length": "5"},
    )
    assert tus.status == 412
    assert tus.headers["Access-Control-Allow-Origin"] == APP

    # An app in a mobile web view, by its own scheme.
    resp = await cors_api.http.get(
        f"{cors_api.url}/v1/photos", headers={**cors_api.auth, "Origin": "capacitor://localhost"}
    )
    assert resp.headers["Access-Control-Allow-Origin"] == "capacitor://localhost"


async def test_an_origin_not_listed_gets_nothing(cors_api: Api) -> None:
    other = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    resp = await cors_api.http.options(f"{cors_api.url}/v1/photos", headers=other)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "cors_origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await cors_api.http.get(
        f"{cors_api.url}/v1/photos", headers={**cors_api.auth, "Origin": "http://evil.example"}
    )
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_by_default_no_origin_may_and_tus_discovery_stays(api: Api) -> None:
    resp = await api.http.options(f"{api.url}/v1/photos", headers=_preflight("POST", "x"))
    assert resp.status == 403
    resp = await api.upload(fake_jpeg(), headers={"Origin": APP})
    assert resp.status == 201
    assert not [h for h in resp.headers if h.startswith("Access-Control-")]
    assert "Vary" not in resp.headers
    # tus discovery (no Access-Control-Request-Method): still tus's answer.
    resp = await api.http.options(f"{api.url}/v1/uploads", headers={"Origin": APP})
    assert resp.status == 204
    assert resp.headers["Tus-Version"] == "1.0.0"


async def test_any_origin_with_a_star(redis_url: str, redis: RedisClient, tmp_path: Path) -> None:
    settings = api_settings(tmp_path, redis_url, cors_origins="*")
    async with running_api(settings, "alice") as api:
        resp = await api.http.options(
            f"{api.url}/v1/uploads", headers=_preflight("POST", "authorization")
        )
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Vary" not in resp.headers
        resp = await api.http.get(f"{api.url}/v1/photos", headers={**api.auth, "Origin": APP})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("value", ["http://app.example/path", "app.example", "http://a b"])
def test_a_setting_that_is_no_origin_stops_start_up(value: str) -> None:
    with pytest.raises(SettingsError, match="FILMSTRIP_CORS_ORIGINS"):
        load_settings({"FILMSTRIP_CORS_ORIGINS": value})
    settings = load_settings({"FILMSTRIP_CORS_ORIGINS": "HTTPS://App.Example/"})
    assert settings.api.cors_origin_list == ("https://app.example",)
