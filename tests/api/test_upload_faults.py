"""The upload path under stress: a 1 GB upload in bounded memory (multipart and tus), and
Redis stopped in the middle of 50 uploads with nothing lost and nothing processed twice."""

from __future__ import annotations

import asyncio
import collections
import io
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from PIL import Image

from bench.redis_server import RedisServer
from filmstrip.blobs import open_blob_store
from filmstrip.catalog import PhotoStatus, catalog_for_url, open_catalog
from filmstrip.concurrency import configure_pool, shutdown_pool
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import Role, Supervisor, command, env_without_filmstrip
from filmstrip.events import EventPublisher
from filmstrip.photos import PhotoLifecycle
from filmstrip.pipeline.vips import configure_vips
from filmstrip.queue import Consumer, JobQueue, QueueOptions
from filmstrip.services.api import backlog
from filmstrip.services.api.app import create_app
from filmstrip.services.api.state import STATE
from filmstrip.services.cli.tokens import issue_token
from filmstrip.services.worker.processor import PhotoProcessor
from filmstrip.settings import Settings, sqlite_url
from tests.api.conftest import api_settings, start_api
from tests.api.factories import fake_jpeg
from tests.support import postgres
from tests.support.settings import replace_settings

ROOT = Path(__file__).resolve().parents[2]
GB = 1024**3
MB = 1024**2
# A JPEG's first bytes (SOI + APP0/JFIF); the api sniffs the type from these only.
JPEG_HEAD = bytes.fromhex("ffd8ffe000104a46494600010100000100010000")

# --- a 1 GB upload keeps the api's memory flat ---------------------------------------


@dataclass
class ApiProcess:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    data_dir: Path

    def peak_rss(self) -> int:
        """The process's high-water resident set size (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")


async def _token(database_url: str) -> str:
    catalog = catalog_for_url(database_url)
    await catalog.connect()
    try:
        _client, token = await issue_token(catalog, "big", admin=False)
    finally:
        await catalog.close()
    return token


@pytest.fixture
async def api_process(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[ApiProcess]:
    """The api role as its own process, taking uploads up to 2 GB."""
    # Gigabytes go to tmpfs when there is one: the test measures memory, not the disk
    # (which on a shared CI box makes 3 GB of fsynced writes take a minute).
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and shutil.disk_usage(shm).free > 4 * GB else tmp_path
    data_dir = Path(tempfile.mkdtemp(prefix="filmstrip-big-", dir=base))
    database_url = postgres.role_catalog_settings().get(
        "database_url", sqlite_url(str(data_dir / "filmstrip.db"))
    )
    token = await _token(database_url)
    port = free_port()
    env = env_without_filmstrip()
    env.update(
        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        FILMSTRIP_DATA_DIR=str(data_dir),
        FILMSTRIP_DATABASE_URL=database_url,
        FILMSTRIP_REDIS_URL=redis_server.url,
        FILMSTRIP_API_PORT=str(port),
        FILMSTRIP_MAX_UPLOAD_BYTES=str(2 * GB),
        FILMSTRIP_LOG_LEVEL="WARNING",
    )
    url = f"http://127.0.0.1:{port}"
    api = Role("api", command("api"), env, f"{url}/readyz", tmp_path / "api.log", cwd=ROOT)
    supervisor = Supervisor([api])
    try:
        supervisor.start()
        await asyncio.to_thread(supervisor.wait_ready, timeout=30)
        proc = supervisor.process("api")
        assert proc is not None
        yield ApiProcess(url=url, token=token, proc=proc, data_dir=data_dir)
    finally:
        await asyncio.to_thread(supervisor.stop, timeout=15)
        # Gigabytes: do not leave them for pytest's tmp retention.
        shutil.rmtree(data_dir, ignore_errors=True)


async def _filler(total: int, *, prefix: bytes = b"", suffix: bytes = b"") -> AsyncIterator[bytes]:
    """``prefix`` + a JPEG head + filler up to ``total`` file bytes + ``suffix``."""
    block = bytes(range(256)) * (MB // 256)
    yield prefix + JPEG_HEAD
    left = total - len(JPEG_HEAD)
    while left > 0:
        piece = block[: min(len(block), left)]
        left -= len(piece)
        yield piece
    yield suffix


async def _warm_up(api: ApiProcess, http: aiohttp.ClientSession, corpus: Path) -> None:
    # Lazy imports and first-request allocations belong to the baseline, not to the upload.
    form = aiohttp.FormData()
    form.add_field("file", (corpus / "real/Landscape_1.jpg").read_bytes(), filename="w.jpg")
    resp = await http.post(f"{api.url}/v1/photos", data=form, headers=_auth(api.token))
    assert resp.status == 201, await resp.text()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
async def test_a_1gb_upload_keeps_api_memory_flat(api_process: ApiProcess, corpus: Path) -> None:
    api = api_process
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await _warm_up(api, http, corpus)
        baseline = api.peak_rss()

        started = time.perf_counter()
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        resp = await http.post(
            f"{api.url}/v1/photos",
            data=_filler(GB, prefix=head, suffix=f"\r\n--{boundary}--\r\n".encode()),
            headers={
                **_auth(api.token),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        body = await resp.json()
        assert resp.status == 201, body
        multipart_growth = api.peak_rss() - baseline
        multipart_s = time.perf_counter() - started
        big = api.data_dir / "blobs" / "originals" / body["photo_id"]
        assert big.stat().st_size == GB
        big.unlink()  # keep at most 2 GB around at once

        started = time.perf_counter()
        tus = {**_auth(api.token), "Tus-Resumable": "1.0.0"}
        created = await http.post(
            f"{api.url}/v1/uploads", headers={**tus, "Upload-Length": str(GB + 1)}
        )
        assert created.status == 201, await created.text()
        patched = await http.patch(
            f"{api.url}{created.headers['Location']}",
            data=_filler(GB + 1),
            headers={
                **tus,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        )
        assert patched.status == 204, await patched.text()
        assert patched.headers["Filmstrip-Duplicate"] == "false"
        tus_growth = api.peak_rss() - baseline
        tus_s = time.perf_counter() - started

    tus_photo = api.data_dir / "blobs" / "originals" / patched.headers["Filmstrip-Photo-Id"]
    assert tus_photo.stat().st_size == GB + 1
    print(
        f"\napi RSS growth for 1 GB: multipart {multipart_growth / MB:.1f} MB"
        f" in {multipart_s:.1f} s, tus {tus_growth / MB:.1f} MB in {tus_s:.1f} s"
        f" (baseline peak {baseline / MB:.1f} MB)"
    )
    assert multipart_growth < 50 * MB
    assert tus_growth < 50 * MB


# --- Redis stopped during 50 uploads -----------------------------------------------------


@pytest.fixture(scope="module")
def photos(corpus: Path) -> list[bytes]:
    """50 small, distinct, valid JPEGs cut from one corpus photo."""
    source = Image.open(corpus / "real/Landscape_1.jpg").convert("RGB")
    source.thumbnail((400, 400))
    out = []
    for i in range(50):
        buf = io.BytesIO()
        source.crop((i, i, i + 200, i + 150)).save(buf, "JPEG", quality=80)
        out.append(buf.getvalue())
    assert len(set(out)) == 50
    return out


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True) as server:
        yield server


@dataclass
class Stack:
    url: str
    token: str
    settings: Settings
    runner: web.AppRunner
    completions: collections.Counter[str]


@pytest.fixture
async def stack(own_redis: RedisServer, tmp_path: Path) -> AsyncIterator[Stack]:
    """An api (with its outbox relay) and a worker in this process, on a Redis we can stop."""
    settings = api_settings(
        tmp_path,
        own_redis.url,
        worker_concurrency="2",
        visibility_timeout_ms="5000",
        job_backoff_ms="200",
    )
    runner = web.AppRunner(create_app(settings, background=True))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    _client, token = await issue_token(runner.app[STATE].catalog, "faults", admin=False)

    completions: collections.Counter[str] = collections.Counter()
    configure_vips(settings.pipeline)
    configure_pool(2)
    redis = aioredis.Redis.from_url(settings.redis.url, socket_connect_timeout=2)
    catalog = await open_catalog(settings)
    blobs = await open_blob_store(settings)
    complete_photo = catalog.complete_photo

    async def counted_complete(photo_id: str, **kwargs: Any) -> bool:
        # Each real end of processing (not a skipped duplicate delivery) records here.
        completions[photo_id] += 1
        return await complete_photo(photo_id, **kwargs)

    catalog.complete_photo = counted_complete  # type: ignore[method-assign]
    queue = JobQueue(redis, QueueOptions.from_settings(settings))
    # Every stage in the upload's job: one completion per photo, no follow-up job.
    ready_only = replace_settings(settings, defer_optimization=False)
    photos = PhotoLifecycle(
        ready_only, catalog, queue, EventPublisher(redis), signing_secret=b"test"
    )
    processor = PhotoProcessor(ready_only, photos=photos, blobs=blobs)
    consumer = Consumer(
        queue,
        processor.handle,
        on_failed=processor.on_failed,
        concurrency=settings.queue.concurrency,
        name="faults-worker",
    )
    worker = asyncio.create_task(consumer.run())
    try:
        yield Stack(
            url=f"http://127.0.0.1:{port}",
            token=token,
            settings=settings,
            runner=runner,
            completions=completions,
        )
    finally:
        await consumer.stop()
        await worker
        shutdown_pool()
        await blobs.close()
        await catalog.close()
        await redis.aclose()
        await runner.cleanup()


async def test_redis_stopped_during_50_uploads_loses_nothing(
    stack: Stack, own_redis: RedisServer, photos: list[bytes]
) -> None:
    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    outage, down, up = asyncio.Event(), asyncio.Event(), asyncio.Event()
    gate = asyncio.Semaphore(5)

    async def upload(i: int, http: aiohttp.ClientSession) -> None:
        if i >= 20:
            # Some uploads meet the outage itself: on a fast machine all 50 could otherwise
            # be answered before Redis has stopped (15-19 race with the stop), and the last
            # five come after it.
            await (up if i >= 45 else down).wait()
        async with gate:
            form = aiohttp.FormData()
            form.add_field("file", photos[i], filename=f"{i}.jpg", content_type="image/jpeg")
            resp = await http.post(f"{stack.url}/v1/photos", data=form, headers=_auth(stack.token))
            answers[i] = (resp.status, await resp.json())
            if len(answers) == 15:
                outage.set()

    async def stop_and_restart() -> None:
        await outage.wait()
        # Stopping blocks (it waits for the process): off the loop, so uploads carry on.
        await asyncio.to_thread(own_redis.stop)
        down.set()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_redis.start)
        up.set()

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(stop_and_restart(), *(upload(i, http) for i in range(50)))

    statuses = collections.Counter(status for status, _ in answers.values())
    print(f"\nanswers during the outage run: {dict(statuses)}")
    assert set(statuses) <= {201, 503}, answers
    assert statuses[503] > 0, "the outage should have refused some uploads"
    assert statuses[201] > 15, "uploads before and after the outage are accepted"
    assert all(answers[i][0] == 201 for i in range(45, 50)), answers
    accepted = {body["photo_id"] for status, body in answers.values() if status == 201}

    state = stack.runner.app[STATE]
    for _ in range(600):
        done = [await state.catalog.get_photo(pid) for pid in accepted]
        if all(p is not None and p.status == PhotoStatus.COMPLETED for p in done):
            break
        await asyncio.sleep(0.1)
    missing = {}
    for pid in accepted:
        photo = await state.catalog.get_photo(pid)
        if photo is None or photo.status != PhotoStatus.COMPLETED:
            missing[pid] = photo.status if photo else None
    assert not missing, f"accepted but never completed: {missing}"
    # Processed exactly once each, and nothing else was.
    assert dict(stack.completions) == {pid: 1 for pid in accepted}
    # Refused uploads left nothing: no row, no blob, no job, no outbox entry.
    rows = await state.catalog._fetchall("SELECT id FROM photos")
    assert {r[0] for r in rows} == accepted
    originals = {info.key async for info in state.blobs.list("originals/")}
    assert originals == {f"originals/{pid}" for pid in accepted}
    pending = await state.catalog.outbox_pending(older_than_s=0)
    assert {e.photo_id for e in pending} <= accepted, pending
    # An accepted photo's entry may outlive its job by one relay round: when the outage
    # cut the answer to an enqueue Redis had applied, the job ran, and the relay (entries
    # 2 s old, every 2 s) dedupes it and deletes the entry.
    for _ in range(100):
        if not pending:
            break
        await asyncio.sleep(0.1)
        pending = await state.catalog.outbox_pending(older_than_s=0)
    assert pending == []
    counts = await state.queue.counts()
    assert counts.get("waiting", 0) == 0 and counts.get("failed", 0) == 0, counts


async def test_an_upload_whose_enqueue_failed_makes_the_next_ask_redis(
    own_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Far below the limit the backlog is read once a second; an upload that found Redis
    # gone must not leave that reading standing, or uploads are taken on it for the rest
    # of the second though the queue is down. (A reading good for a minute here, so a
    # slow machine cannot let it lapse between the uploads.)
    monkeypatch.setattr(backlog, "FRESH_S", 60.0)
    runner, url = await start_api(api_settings(tmp_path, own_redis.url))
    try:
        _client, token = await issue_token(runner.app[STATE].catalog, "gone", admin=False)
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:

            async def upload(n: int) -> tuple[int, Any]:
                form = aiohttp.FormData()
                form.add_field("file", fake_jpeg() + bytes([n]), filename=f"{n}.jpg")
                resp = await http.post(f"{url}/v1/photos", data=form, headers=auth)
                return resp.status, await resp.json()

            assert (await upload(1))[0] == 201
            own_redis.stop(kill=True)
            # Taken on the reading of a moment ago, and recorded for the outbox relay.
            status, kept = await upload(2)
            assert status == 201, kept
            status, body = await upload(3)
            assert (status, body["error"]["code"]) == (503, "queue_unavailable"), body
        pending = await runner.app[STATE].catalog.outbox_pending(older_than_s=0)
        assert [e.photo_id for e in pending] == [kept["photo_id"]]
    finally:
        await runner.cleanup()
