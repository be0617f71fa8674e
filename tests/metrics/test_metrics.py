"""Prometheus exposition on each role, and the dashboard's stage buckets in Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bench.redis_server import RedisServer
from filmstrip import keys
from filmstrip.embedded.redis_server import free_port
from filmstrip.metrics.exposition import start_metrics_server
from filmstrip.metrics.stage_stats import StageTimingsBuffer, read_stage_series
from filmstrip.queue import JobQueue, QueueOptions
from filmstrip.services.bus.app import create_app as create_bus_app
from tests.api.conftest import api_settings, start_api


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text body, keyed by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def test_api_metrics_count_requests_by_route_status_and_upload_bytes(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    runner, url = await start_api(api_settings(tmp_path, redis_server.url))
    try:
        async with aiohttp.ClientSession() as http:
            before = await (await http.get(f"{url}/metrics")).text()
            for _ in range(3):
                await http.get(f"{url}/v1/photos/00000000-0000-0000-0000-000000000000")
            form = aiohttp.FormData()
            form.add_field("file", b"\xff\xd8\xff" + b"x" * 5000, filename="a.jpg")
            assert (await http.post(f"{url}/v1/photos", data=form)).status == 401
            await http.get(f"{url}/no/such/page")
            resp = await http.get(f"{url}/metrics")
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            after = await resp.text()
    finally:
        await runner.cleanup()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/photos/{photo_id}"
    assert delta("filmstrip_http_requests_total", route=route, method="GET", status="401") == 3
    assert delta("filmstrip_http_request_duration_seconds_count", route=route, method="GET") == 3
    assert (
        delta("filmstrip_http_requests_total", route="unmatched", method="GET", status="404") == 1
    )
    assert (
        delta("filmstrip_http_requests_total", route="/v1/photos", method="POST", status="401") == 1
    )
    # Queue depths are read from Redis on each scrape.
    assert value(after, "filmstrip_queue_jobs", queue="photo-processing", state="waiting") == 0


async def test_upload_bytes_and_queue_depth_follow_an_accepted_upload(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    from filmstrip.services.api.state import STATE
    from filmstrip.services.cli.tokens import issue_token

    runner, url = await start_api(api_settings(tmp_path, redis_server.url))
    try:
        _client, token = await issue_token(runner.app[STATE].catalog, "m", admin=False)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            before = await (await http.get(f"{url}/metrics")).text()
            form = aiohttp.FormData()
            form.add_field("file", b"\xff\xd8\xff\xe0" + b"y" * 20_000, filename="b.jpg")
            assert (await http.post(f"{url}/v1/photos", data=form)).status == 201
            after = await (await http.get(f"{url}/metrics")).text()
    finally:
        await runner.cleanup()
    grew = value(after, "filmstrip_upload_bytes_total") - value(
        before, "filmstrip_upload_bytes_total"
    )
    assert grew >= 20_004  # the multipart body: the file plus its headers
    assert value(after, "filmstrip_queue_jobs", queue="photo-processing", state="waiting") == 1


async def test_bus_metrics_report_its_sockets(
    redis_server: RedisServer, redis: aioredis.Redis, tmp_path: Path
) -> None:
    settings = api_settings(tmp_path, redis_server.url)
    runner = web.AppRunner(create_bus_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws")
            text = ""
            for _ in range(50):  # the hub registers the socket as the handshake finishes
                text = await (await http.get(f"http://127.0.0.1:{port}/metrics")).text()
                if value(text, "filmstrip_ws_connections") == 1:
                    break
                await asyncio.sleep(0.05)
            assert value(text, "filmstrip_ws_connections") == 1
            assert value(text, "filmstrip_ws_identified") == 0
            assert ("filmstrip_ws_events_delivered_total", ()) in samples(text)
            await ws.close()
    finally:
        await runner.cleanup()


async def test_worker_metrics_server_serves_queue_depths_and_yields_a_taken_port(
    redis_server: RedisServer, redis: aioredis.Redis
) -> None:
    queue = JobQueue(redis, QueueOptions())
    await queue.add("photo:x", b"{}")
    port = free_port()
    runner = await start_metrics_server("127.0.0.1", port, refresh=lambda: _depths(queue))
    assert runner is not None
    try:
        # A second server on the same port must not raise: metrics never stop a worker.
        assert await start_metrics_server("127.0.0.1", port) is None
        assert await start_metrics_server("127.0.0.1", 0) is None
        async with aiohttp.ClientSession() as http:
            text = await (await http.get(f"http://127.0.0.1:{port}/metrics")).text()
        assert value(text, "filmstrip_queue_jobs", queue="photo-processing", state="waiting") == 1
    finally:
        await runner.cleanup()


async def _depths(queue: JobQueue) -> None:
    from filmstrip.metrics.queue import refresh_depths

    await refresh_depths(queue)


async def test_stage_series_average_per_minute_and_expire(redis: aioredis.Redis) -> None:
    now_ms = 1_800_000_000_000
    minute = now_ms // 60_000
    buffer = StageTimingsBuffer(redis)
    buffer.add({"thumbnails": 100.0}, now_ms=now_ms - 120_000)
    buffer.add({"thumbnails": 30.0, "validation": 4.0}, now_ms=now_ms)
    await buffer.flush()
    buffer.add({"thumbnails": 50.0}, now_ms=now_ms)  # added to what is stored
    await buffer.flush()
    series = {s.stage: s for s in await read_stage_series(redis, now_ms=now_ms, minutes=5)}
    assert series["thumbnails"].runs == [0, 0, 1, 0, 2]
    assert series["thumbnails"].mean_ms == [0.0, 0.0, 100.0, 0.0, 40.0]
    assert series["validation"].runs == [0, 0, 0, 0, 1]
    ttl = await redis.ttl(keys.stage_stats_minute(minute))
    assert 0 < ttl <= 7200


async def test_stage_timings_survive_a_flush_redis_refused(redis: aioredis.Redis) -> None:
    now_ms = 1_700_000_000_000  # a minute of its own
    nowhere = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5)
    buffer = StageTimingsBuffer(nowhere)
    buffer.add({"metadata": 10.0}, now_ms=now_ms)
    await buffer.flush()  # refused: logged and kept
    buffer.add({"metadata": 20.0}, now_ms=now_ms)
    buffer._redis = redis  # Redis is back
    await buffer.flush()
    await nowhere.aclose()
    series = {s.stage: s for s in await read_stage_series(redis, now_ms=now_ms, minutes=1)}
    assert series["metadata"].runs == [2] and series["metadata"].mean_ms == [15.0]
    await buffer.flush()  # nothing left to write twice
    series = {s.stage: s for s in await read_stage_series(redis, now_ms=now_ms, minutes=1)}
    assert series["metadata"].runs == [2]
