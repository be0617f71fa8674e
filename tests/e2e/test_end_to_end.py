"""The three roles as separate processes, started with the Procfile's commands: upload a
real photo, follow it live over the bus, fetch an upright thumbnail; a corrupt photo fails
with a readable reason and the worker carries on."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from filmstrip.client import EventStream, Gap
from tests.support.stack import Stack, start_stack

STAGES = ["validation", "metadata", "thumbnails", "optimization"]
READY_STAGES = STAGES[:3]  # optimization runs after "completed", in the follow-up job


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """api, worker and bus started with the Procfile's commands (tests/support/stack.py)."""
    # Every smaller optimised copy is kept (the corpus's JPEGs save 2-3 %, under the default
    # minimum), so the follow-up job's derivative is there to follow and to make again.
    running = start_stack(tmp_path_factory.mktemp("e2e"), optimize_min_saving="0")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {stack.token}"}) as session:
        yield session


async def _upload(http: aiohttp.ClientSession, stack: Stack, path: Path) -> str:
    form = aiohttp.FormData()
    form.add_field("file", path.read_bytes(), filename=path.name)
    resp = await http.post(f"{stack.api}/v1/photos", data=form)
    body = await resp.json()
    assert resp.status == 201, body
    return str(body["photo_id"])


async def _open_stream(stack: Stack) -> EventStream:
    """The client's events (filmstrip.client), connected: nothing from now on is missed."""
    stream = EventStream(stack.bus, stack.token)
    await stream.connect()
    return stream


DONE = {"photo.processing.completed", "photo.processing.failed"}
FOLLOW_UP_DONE = {"photo.processing.deferred.completed", "photo.processing.failed"}


async def _events_until_done(
    events: EventStream, photo_id: str, *, until: set[str] = DONE
) -> list[dict[str, Any]]:
    """Every event of the photo, in order, up to the first of ``until``: following it
    replays the events its room got before (the stream resumes from its last event)."""
    await events.follow(photo_id)
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        async for item in events:
            assert not isinstance(item, Gap), item
            if item.photo_id != photo_id:
                continue
            seen.append(msgspec.to_builtins(item))
            if item.event in until:
                return seen
    raise AssertionError("the event stream ended")


async def test_upload_to_live_completion_and_upright_thumbnail(
    stack: Stack, http: aiohttp.ClientSession, corpus: Path
) -> None:
    source = corpus / "real/Landscape_6.jpg"  # stored 1200x1800, EXIF orientation 6
    stream = await _open_stream(stack)
    try:
        photo_id = await _upload(http, stack, source)
        events = await _events_until_done(stream, photo_id, until=FOLLOW_UP_DONE)
    finally:
        await stream.close()

    names = [e["event"] for e in events]
    assert names[0] == "photo.uploaded" and events[0]["type"] == "upload.event"
    # Ready first (the client's "done"), then the follow-up job's optimised copy.
    ready = names.index("photo.processing.completed")
    assert events[ready]["type"] == "completion.event"
    assert names[ready + 1 :] == [
        "photo.processing.stage.completed",
        "photo.processing.deferred.completed",
    ], names
    stages = [
        e["data"]["stage"] for e in events if e["event"] == "photo.processing.stage.completed"
    ]
    assert stages == STAGES
    assert [e["data"]["stage"] for e in events[:ready] if "stage" in e["data"]] == READY_STAGES
    assert "optimized" in [d["name"] for d in events[-1]["data"]["derivatives"]]
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids), "an event arrived twice"
    assert all(e["metadata"]["trace_id"] == events[0]["metadata"]["trace_id"] for e in events)

    photo = await (await http.get(f"{stack.api}/v1/photos/{photo_id}")).json()
    assert photo["status"] == "completed"
    assert photo["metadata"]["width"] == 1800 and photo["metadata"]["height"] == 1200
    derivatives = {d["name"]: d for d in photo["derivatives"]}
    thumb_info = derivatives["thumbnail"]
    assert (thumb_info["width"], thumb_info["height"]) == (256, 171)

    # The completion event alone is enough to show the photo: its URLs, sizes and date.
    shown = events[ready]["data"]
    assert (shown["width"], shown["height"]) == (1800, 1200) and shown["thumbhash"]
    in_event = {d["name"]: d for d in shown["derivatives"]}
    assert {k: v for k, v in in_event["thumbnail"].items() if k != "url"} == {
        k: v for k, v in thumb_info.items() if k != "url"
    }
    async with aiohttp.ClientSession() as anonymous:  # signed URL: no header needed
        resp = await anonymous.get(f"{stack.api}{in_event['thumbnail']['url']}")
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/webp"
        resp = await anonymous.get(f"{stack.api}{thumb_info['url']}")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/webp"
        thumb = Image.open(io.BytesIO(await resp.read())).convert("RGB")
    assert thumb.size == (256, 171)

    upright = ImageOps.exif_transpose(Image.open(source)).convert("RGB").resize(thumb.size)
    as_stored = Image.open(source).convert("RGB").rotate(180).resize((171, 256)).resize(thumb.size)
    diff_upright = sum(ImageStat.Stat(ImageChops.difference(thumb, upright)).mean) / 3
    diff_wrong = sum(ImageStat.Stat(ImageChops.difference(thumb, as_stored)).mean) / 3
    assert diff_upright < 12, diff_upright
    assert diff_wrong > diff_upright * 2


async def test_corrupt_photo_fails_readably_and_the_worker_carries_on(
    stack: Stack, http: aiohttp.ClientSession, corpus: Path
) -> None:
    stream = await _open_stream(stack)
    try:
        bad_id = await _upload(http, stack, corpus / "bad/truncated_jpeg.jpg")
        events = await _events_until_done(stream, bad_id)
        failed = events[-1]
        assert failed["event"] == "photo.processing.failed", failed
        assert failed["data"]["error"]["category"] == "DATA"
        assert failed["data"]["error"]["message"]

        good_id = await _upload(http, stack, corpus / "real/Portrait_3.jpg")
        events = await _events_until_done(stream, good_id)
        # A fast follow-up job may have announced its copy by the time we caught up.
        names = [e["event"] for e in events]
        assert "photo.processing.completed" in names and "photo.processing.failed" not in names
    finally:
        await stream.close()

    photo = await (await http.get(f"{stack.api}/v1/photos/{bad_id}")).json()
    assert photo["status"] == "failed"
    error = photo["error"]
    assert error["category"] == "DATA" and error["retryable"] is False, error
    assert "truncat" in error["message"].lower() or "premature" in error["message"].lower()
    assert stack.procs["worker"].poll() is None


async def test_a_photo_followed_after_its_201_misses_none_of_its_events(
    stack: Stack, http: aiohttp.ClientSession, corpus: Path
) -> None:
    """A plain client (no resume): identify, upload, wait until the photo is processed,
    only then subscribe: it still gets what it lacks of the photo's events, never one older
    than what it already has."""
    async with aiohttp.ClientSession() as session, session.ws_connect(stack.bus) as socket:
        await socket.send_json({"type": "identify", "token": stack.token})
        got = [await socket.receive_json(timeout=10)]
        assert got[0]["type"] == "identified", got
        photo_id = await _upload(http, stack, corpus / "real/Portrait_6.jpg")
        await _ready_with_follow_up(http, stack, photo_id)
        await socket.send_json({"type": "subscribe", "photo_id": photo_id})
        await socket.send_json({"type": "ping"})
        while got[-1]["type"] != "pong":
            got.append(await socket.receive_json(timeout=10))
    names = [m.get("event") or m["type"] for m in got if m.get("photo_id", photo_id) == photo_id]
    # The client's room brought the upload and the completion live; the subscribe brings
    # what only the photo's room got after the completion (the follow-up job's), in order.
    # Its started and first stages are older than the completion: a UI would go back.
    assert names[:3] == ["identified", "photo.uploaded", "photo.processing.completed"], names
    subscribed = names.index("subscribed")
    assert names[subscribed + 1 :] == [
        "photo.processing.stage.completed", "photo.processing.deferred.completed", "pong",
    ], names  # fmt: skip


async def _ready_with_follow_up(http: aiohttp.ClientSession, stack: Stack, photo_id: str) -> Any:
    """The photo's record once it is ready and its follow-up job has reported."""
    async with asyncio.timeout(60):
        while True:
            photo = await (await http.get(f"{stack.api}/v1/photos/{photo_id}")).json()
            if photo["status"] == "completed" and "optimization" in photo["metadata"]:
                return photo
            await asyncio.sleep(0.2)


async def test_a_derivative_found_short_or_missing_is_made_again(
    stack: Stack, http: aiohttp.ClientSession, corpus: Path
) -> None:
    # Workers write derivatives without fsync; a power cut can leave one short or gone.
    photo_id = await _upload(http, stack, corpus / "real/Landscape_3.jpg")
    photo = await _ready_with_follow_up(http, stack, photo_id)
    urls = {
        d["name"]: f"{stack.api}/v1/photos/{photo_id}/derivatives/{d['name']}"
        for d in photo["derivatives"]
    }
    before = {name: await (await http.get(url)).read() for name, url in urls.items()}
    folder = stack.data_dir / "blobs" / "derivatives" / photo_id
    thumbnail = next(folder.glob("thumbnail.*"))
    thumbnail.write_bytes(before["thumbnail"][: len(before["thumbnail"]) // 2])
    next(folder.glob("optimized*")).unlink()

    for name in ("thumbnail", "optimized"):
        resp = await http.get(urls[name])
        body = await resp.json()
        assert resp.status == 503, body
        assert body["error"]["code"] == "derivative_remaking"
        assert int(resp.headers["Retry-After"]) > 0
    async with asyncio.timeout(60):
        for name in ("thumbnail", "optimized"):
            resp = await http.get(urls[name])
            while resp.status == 503:
                await asyncio.sleep(0.2)
                resp = await http.get(urls[name])
            assert resp.status == 200
            # The stages are deterministic: the same bytes as before the damage.
            assert await resp.read() == before[name], name
    assert (await http.get(urls["preview"])).status == 200
    after = await (await http.get(f"{stack.api}/v1/photos/{photo_id}")).json()

    def unsigned(record: Any) -> list[dict[str, Any]]:
        return [{k: v for k, v in d.items() if k != "url"} for d in record["derivatives"]]

    assert unsigned(after) == unsigned(photo)
