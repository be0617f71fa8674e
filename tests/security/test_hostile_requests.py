"""Hostile request heads, sent as raw bytes: never a 5xx, always the JSON error shape, never
an ERROR or a traceback in the log, and nothing written (no blob, row, job or tus upload).

These are the requests an outside attack run found answered with 500s or plain text (issue
21): bytes that are not UTF-8 in a signed URL's ``sig``, in ``Authorization`` and in
``Host``; a NUL in a path; requests aiohttp's own parser refuses; an encoded slash that
made the auth middleware and the router disagree about the route.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from filmstrip.auth.signing import signed_query
from filmstrip.embedded.redis_server import free_port
from filmstrip.services.api.app import create_app
from tests.api.conftest import Api
from tests.security.conftest import MakeApi
from tests.security.raw_http import Reply, exchange

NO_PHOTO = "0a1b2c3d-0000-4000-8000-000000000000"
BAD_BYTES = b"\xff\xfe\xc3("  # not UTF-8 in any reading


def _get(target: bytes, *headers: bytes) -> bytes:
    return (
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: api\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n"
    )


def _upload(api: Api, *headers: bytes, body: bytes = b"") -> bytes:
    auth = f"Authorization: Bearer {api.token}".encode()
    return (
        b"POST /v1/photos HTTP/1.1\r\nHost: api\r\n"
        + auth
        + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n"
        + body
    )


def _signed(api: Api, path: str) -> str:
    """A valid signed URL's query for ``path``."""
    return signed_query(api.state.signing_secret, path, 3600).split("?", 1)[1]


def _exp(api: Api) -> str:
    return _signed(api, "/x").split("&")[0].removeprefix("exp=")


Request = Callable[[Api], bytes]

# name: (request, expected status, expected code)
HOSTILE: dict[str, tuple[Request, int, str]] = {
    # --- item 2: bytes that reached our code undecoded
    "signed URL whose sig is not ASCII": (
        lambda api: _get(f"/v1/photos/{NO_PHOTO}/original?exp={_exp(api)}&sig=%C3%A9".encode()),
        403, "bad_signature",
    ),
    "signed URL whose sig is not UTF-8": (
        lambda api: _get(f"/v1/photos/{NO_PHOTO}/original?exp={_exp(api)}&sig=".encode()
                         + b"%FF%FE"),
        403, "bad_signature",
    ),
    "Authorization that is not UTF-8": (
        lambda api: _get(b"/v1/photos", b"Authorization: Bearer " + BAD_BYTES),
        401, "invalid_token",
    ),
    "Authorization that is not a bearer token": (
        lambda api: _get(b"/v1/photos", b"Authorization: Bearer not/a,token!"),
        401, "invalid_token",
    ),
    "NUL in a static path": (lambda api: _get(b"/static/css/app.css%00.py"), 400, "bad_request"),
    "NUL in a query value": (lambda api: _get(b"/v1/photos?cursor=%00"), 400, "bad_request"),
    "static name longer than a file name may be": (
        lambda api: _get(b"/static/" + b"a" * 300), 404, "not_found"
    ),
    "Host that is not UTF-8 on /v1/config": (
        lambda api: b"GET /v1/config HTTP/1.1\r\nHost: " + BAD_BYTES + b"\r\n\r\n",
        400, "bad_request",
    ),
    "Host that is not a host name": (
        lambda api: b"GET /v1/config HTTP/1.1\r\nHost: a/b@c\r\n\r\n", 400, "bad_request"
    ),
    # --- item 5: refused by aiohttp's own parser
    "URL over 8190 bytes": (lambda api: _get(b"/v1/photos?q=" + b"a" * 9000), 400,
                            "bad_request"),
    "header line over 8190 bytes": (lambda api: _get(b"/", b"X-Big: " + b"a" * 9000), 400,
                                    "bad_request"),
    "too many headers": (
        lambda api: _get(b"/", *[b"X-H%d: v" % i for i in range(200)]), 400, "bad_request"
    ),
    "duplicate Content-Length": (
        lambda api: _upload(api, b"Content-Length: 1", b"Content-Length: 2", body=b"ab"),
        400, "bad_request",
    ),
    "negative Content-Length": (
        lambda api: _upload(api, b"Content-Length: -1"), 400, "bad_request"
    ),
    "Content-Length with chunked": (
        lambda api: _upload(
            api, b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"
        ),
        400, "bad_request",
    ),
    "method that is not a token": (lambda api: b"G(T / HTTP/1.1\r\nHost: api\r\n\r\n", 400,
                                   "bad_request"),
    "TLS handshake on the HTTP port": (
        lambda api: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400,
        "bad_request",
    ),
    "header name with a space": (lambda api: _get(b"/", b"Bad Name: v"), 400, "bad_request"),
    "path bytes that are not UTF-8": (lambda api: _get(b"/static/" + BAD_BYTES), 400,
                                      "bad_request"),
    "query bytes that are not UTF-8": (lambda api: _get(b"/v1/config?x=" + BAD_BYTES), 400,
                                       "bad_request"),
    # --- item 6: the router matches the raw path; so must the auth middleware
    "encoded slash makes a signed URL of the photo route": (
        lambda api: _get(
            f"/v1/photos/{NO_PHOTO}%2Foriginal?"
            f"{_signed(api, f'/v1/photos/{NO_PHOTO}/original')}".encode()
        ),
        401, "unauthorized",
    ),
}  # fmt: skip


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [(r.name, r.levelname, r.getMessage()) for r in bad]


async def _nothing_written(api: Api) -> None:
    assert api.blob_files() == []
    assert await api.photo_count() == 0
    assert await api.waiting_jobs() == 0
    tus = Path(api.settings.effective_tus_dir)
    assert not tus.exists() or not [p for p in tus.rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_request_is_a_json_4xx(
    name: str, make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    request, status, code = HOSTILE[name]
    api = await make_api(api_rate_burst="100000")
    reply = await exchange(api.url, request(api))
    assert (reply.status, reply.error()["code"]) == (status, code), reply
    _no_errors_logged(caplog)
    await _nothing_written(api)


def _v1_routes(api: Api) -> list[tuple[str, str, bool]]:
    """(method, a path, public) for every /v1 route the api serves."""
    values = {"photo_id": NO_PHOTO, "name": "thumbnail", "session_id": "s_1", "job_id": "j1",
              "upload_id": "u1"}  # fmt: skip
    routes = []
    for route in create_app(api.settings, background=False).router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if not canonical.startswith("/v1/"):
            continue
        path = canonical.format(**values)
        public = canonical in ("/v1/openapi.json", "/v1/config") or route.method == "OPTIONS"
        routes.append((route.method, path, public))
    return routes


async def test_authorization_that_is_not_utf8_is_401_on_every_v1_route(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api = await make_api(api_rate_burst="100000")
    routes = _v1_routes(api)
    assert len(routes) >= 20
    for method, path, public in routes:
        reply = await exchange(
            api.url,
            f"{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n".encode()
            + b"Authorization: Bearer "
            + BAD_BYTES
            + b"\r\n\r\n",
        )
        assert reply.status < 500, (method, path, reply)
        if public:
            continue
        assert reply.status == 401, (method, path, reply)
        if method != "HEAD":  # which has no body to read the code from
            assert reply.error()["code"] == "invalid_token", (method, path)
    _no_errors_logged(caplog)
    await _nothing_written(api)


async def test_undecodable_tokens_are_charged_to_the_ip(make_api: MakeApi) -> None:
    """Guesses the token parser refuses cost the address like any refused token."""
    api = await make_api(api_rate_per_s="0.2", api_rate_burst="3")
    guess = _get(f"/v1/photos/{NO_PHOTO}".encode(), b"Authorization: Bearer " + BAD_BYTES)
    for _ in range(3):
        assert (await exchange(api.url, guess)).error()["code"] == "invalid_token"
    reply = await exchange(api.url, guess)
    assert (reply.status, reply.error()["code"]) == (429, "rate_limited")


async def test_readyz_names_a_dependency_that_is_down_and_no_more(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 7: an unauthenticated probe learns which dependency is down, not its address;
    the log has the cause."""
    caplog.set_level(logging.INFO)
    port = free_port()
    api = await make_api(redis_url=f"redis://127.0.0.1:{port}/0")
    reply: Reply = await exchange(api.url, _get(b"/readyz"))
    assert reply.status == 503
    assert reply.body == (
        b'{"status":"unavailable","checks":{"redis":"down","catalog":"ok","blobs":"ok"}}'
    )
    assert any(str(port) in r.getMessage() for r in caplog.records if r.name.endswith("health"))


async def test_refusals_are_logged_once_at_info_without_traceback(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api = await make_api()
    started = time.monotonic()
    reply = await exchange(api.url, _upload(api, b"Content-Length: 1", b"Content-Length: 2"))
    assert reply.error() == {
        "code": "bad_request",
        "message": "malformed request: Duplicate Content-Length",
    }
    refusals = [r for r in caplog.records if r.getMessage() == "refused a malformed request"]
    assert len(refusals) == 1 and refusals[0].levelno == logging.INFO
    assert refusals[0].exc_info is None
    assert time.monotonic() - started < 5
