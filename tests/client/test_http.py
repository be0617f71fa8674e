"""``ApiClient`` against a real HTTP server on loopback that answers as told: busy answers
tried again (honouring a bounded ``Retry-After``) until the last attempt, which is returned;
an api nobody answers for is ``unreachable``; digests checked in the api's batches; a
listing followed through every page; the base URL taken with or without its slash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from filmstrip.client import ApiClient, ApiFailure, inspect_file, upload_file
from filmstrip.client.http import CHECK_BATCH, Answer, _retry_after, failure
from filmstrip.embedded.redis_server import free_port
from filmstrip.errors import Category
from filmstrip.protocols.http import SessionCreated

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    url: str
    seen: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    """Factory: a server on loopback whose every request goes to ``handler`` (recorded)."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> Server:
        port = free_port()
        server = Server(f"http://127.0.0.1:{port}")

        async def record(request: web.Request) -> web.StreamResponse:
            server.seen.append(request)
            server.bodies.append(await request.read())
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


def _busy(status: int, times: int) -> Handler:
    """``times`` busy answers (``status``), then a session made."""
    left = [times]

    async def handler(_request: web.Request) -> web.StreamResponse:
        if left[0] > 0:
            left[0] -= 1
            return web.json_response(
                {"error": {"code": "busy", "message": "try later"}},
                status=status,
                headers={"Retry-After": "0"},
            )
        return web.json_response({"session_id": "s1", "created_at": "2026-01-01"}, status=201)

    return handler


@pytest.mark.parametrize("status", [429, 503])
async def test_a_busy_answer_is_tried_again(
    serve: Callable[[Handler], Awaitable[Server]], status: int
) -> None:
    server = await serve(_busy(status, 2))
    async with ApiClient(server.url, "t", attempts=3) as api:
        created = await api.create_session()  # a 201 is a success of a JSON call
    assert created == SessionCreated(session_id="s1", created_at="2026-01-01")
    assert len(server.seen) == 3
    assert server.seen[0].headers["Authorization"] == "Bearer t"


async def test_the_last_busy_answer_is_the_outcome(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    server = await serve(_busy(503, 99))
    async with ApiClient(server.url, "t", attempts=3) as api:
        with pytest.raises(ApiFailure) as busy:
            await api.create_session()
        assert (busy.value.status, busy.value.code) == (503, "busy")
        assert busy.value.category is Category.TEMPORARY
        assert len(server.seen) == 3
        answer = await api.send("GET", "/v1/config", retry=False)
    assert answer.status == 503 and len(server.seen) == 4  # one attempt without retry


def test_retry_after_is_bounded() -> None:
    assert _retry_after({"Retry-After": "3600"}, 1.0) == 30.0
    assert _retry_after({"Retry-After": "-5"}, 1.0) == 0.0
    assert _retry_after({"Retry-After": "2.5"}, 1.0) == 2.5
    assert _retry_after({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 1.5) == 1.5
    assert _retry_after({}, 0.5) == 0.5


async def test_an_api_nobody_answers_for_is_unreachable() -> None:
    async with ApiClient(f"http://127.0.0.1:{free_port()}", "t", attempts=2) as api:
        with pytest.raises(ApiFailure) as failed:
            await api.config()
    assert (failed.value.status, failed.value.code) == (0, "unreachable")
    assert failed.value.category is Category.TEMPORARY


def test_an_answer_that_is_not_the_api_s_error_says_what_it_was() -> None:
    proxy = failure(Answer(502, {}, b"<html>Bad Gateway</html>\n"))
    assert (proxy.status, proxy.code, proxy.message) == (
        502,
        "http_error",
        "<html>Bad Gateway</html>",
    )
    empty = failure(Answer(404, {}, b""))
    assert (empty.code, empty.message) == ("http_error", "HTTP 404")


async def test_digests_are_checked_in_the_api_s_batches(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def check(request: web.Request) -> web.StreamResponse:
        asked = (await request.json())["sha256"]
        if len(asked) > CHECK_BATCH:
            return web.json_response({"error": {"code": "bad", "message": "too many"}}, status=400)
        return web.json_response({"existing": {d: f"p-{d[:6]}" for d in asked}})

    server = await serve(check)
    digests = [f"{i:064x}" for i in range(CHECK_BATCH + 1)]
    async with ApiClient(server.url, "t") as api:
        found = await api.existing(digests)
    assert found == {d: f"p-{d[:6]}" for d in digests}
    sizes = [len(msgspec.json.decode(body)["sha256"]) for body in server.bodies]
    assert sizes == [CHECK_BATCH, 1]


def _photo(photo_id: str) -> dict[str, object]:
    return {
        "photo_id": photo_id, "status": "failed", "client_id": "c", "session_id": None,
        "content_type": "image/jpeg", "bytes": 1, "sha256": None, "uploaded_at": "x",
        "processed_at": None, "original_url": "/o", "derivatives": [], "metadata": None,
        "error": None,
    }  # fmt: skip


async def test_a_listing_is_followed_through_every_page(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    cursor = "b+/=?&c"  # as opaque as the api may make it

    async def pages(request: web.Request) -> web.StreamResponse:
        if request.query.get("cursor") == cursor:
            return web.json_response({"items": [_photo("p3")], "next_cursor": None})
        assert "cursor" not in request.query
        return web.json_response({"items": [_photo("p1"), _photo("p2")], "next_cursor": cursor})

    server = await serve(pages)
    async with ApiClient(server.url + "/", "t") as api:  # a slash at the end is no matter
        got = [photo.photo_id async for photo in api.photos_in("failed")]
    assert got == ["p1", "p2", "p3"]
    assert [r.path for r in server.seen] == ["/v1/photos", "/v1/photos"]
    assert server.seen[0].query["status"] == "failed"


async def test_a_small_upload_names_its_digest_so_a_duplicate_is_answered_early(
    serve: Callable[[Handler], Awaitable[Server]], tmp_path: Path
) -> None:
    async def accept(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"photo_id": "p", "job_id": "j", "status": "queued"}, status=201)

    server = await serve(accept)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    small = await asyncio.to_thread(inspect_file, photo)
    async with ApiClient(server.url, "t") as api:
        await api.upload_bytes(b"jpeg", filename="a.jpg", sha256="ab" * 32, session_id="s9")
        await upload_file(api, small)  # the digest of an inspected file goes with it
    assert server.seen[0].headers["X-Content-SHA256"] == "ab" * 32
    assert b'name="session_id"' in server.bodies[0] and b"s9" in server.bodies[0]
    assert small.sha256 and server.seen[1].headers["X-Content-SHA256"] == small.sha256
