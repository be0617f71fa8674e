"""Clients over their request rate get 429 with Retry-After; the buckets live in Redis."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from redis.exceptions import MaxConnectionsError

from filmstrip import keys
from filmstrip.auth import hash_token
from filmstrip.embedded.redis_server import free_port
from filmstrip.redis_client import RedisClient, WaitingRedisCluster
from filmstrip.services.api.accept import check_capacity
from filmstrip.services.api.ratelimit import RateLimiter
from tests.security.conftest import MakeApi, error_of

pytestmark = pytest.mark.both_redis

NO_PHOTO = "00000000-0000-0000-0000-000000000000"


async def test_client_over_its_rate_gets_429_and_others_do_not(
    make_api: MakeApi, redis: aioredis.Redis
) -> None:
    api = await make_api(api_rate_per_s="0.2", api_rate_burst="3")
    url = f"{api.url}/v1/photos/{NO_PHOTO}"
    for _ in range(3):
        await error_of(await api.http.get(url, headers=api.auth), 404, "photo_not_found")
    resp = await api.http.get(url, headers=api.auth)
    await error_of(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["Retry-After"]) <= 5
    # Another client (same IP) has a bucket of its own.
    bob = {"Authorization": f"Bearer {await api.new_token('bob')}"}
    await error_of(await api.http.get(url, headers=bob), 404, "photo_not_found")
    # The bucket is one key in Redis that expires once it would be full again.
    client = await api.state.catalog.client_for_token(hash_token(api.token))
    assert client is not None
    ttl = await redis.pttl(keys.api_rate(f"client:{client.id}"))
    assert 0 < ttl <= 3 / 0.2 * 1000 + 1000


async def test_uploads_count_against_the_same_bucket(make_api: MakeApi) -> None:
    api = await make_api(api_rate_per_s="0.2", api_rate_burst="2")
    for _ in range(2):
        await error_of(await api.upload(b"not a photo at all"), 415, "unsupported_type")
    await error_of(await api.upload(b"not a photo at all"), 429, "rate_limited")
    assert api.blob_files() == []


async def test_refused_tokens_and_anonymous_requests_are_limited_per_ip(
    make_api: MakeApi,
) -> None:
    api = await make_api(api_rate_per_s="0.2", api_rate_burst="3")
    url = f"{api.url}/v1/photos/{NO_PHOTO}"
    bad = {"Authorization": "Bearer fst_guessed-token"}
    # The socket's address counts, never X-Forwarded-For: a forged one gets no fresh bucket.
    forged = (f"203.0.113.{n}" for n in range(1, 100))
    for _ in range(2):
        headers = {**bad, "X-Forwarded-For": next(forged)}
        await error_of(await api.http.get(url, headers=headers), 401, "invalid_token")
    headers = {"X-Forwarded-For": next(forged)}
    await error_of(await api.http.get(url, headers=headers), 401, "unauthorized")
    # The address has spent its bucket: guesses are refused before the token is looked up.
    headers = {**bad, "X-Forwarded-For": next(forged)}
    await error_of(await api.http.get(url, headers=headers), 429, "rate_limited")
    headers = {"X-Forwarded-For": next(forged)}
    original = f"{url}/original?exp=1&sig=x"
    await error_of(await api.http.get(original, headers=headers), 429, "rate_limited")
    # Probes are never limited.
    assert (await api.http.get(f"{api.url}/healthz")).status == 200


async def test_an_idle_bucket_fills_no_further_than_its_burst(redis: RedisClient) -> None:
    # Idle long enough to earn 10 tokens, a bucket still holds only its burst of 3.
    limiter = RateLimiter(redis, rate_per_s=20, burst=3)
    subject = f"idle-{uuid.uuid4().hex}"
    assert await limiter.take(subject) == 0
    await asyncio.sleep(0.5)
    started = time.monotonic()
    allowed = [await limiter.take(subject) == 0 for _ in range(8)].count(True)
    earned = math.ceil((time.monotonic() - started) * 20)
    assert 3 <= allowed <= 3 + earned, (allowed, earned)


async def test_limiter_fails_open_when_redis_is_down(make_api: MakeApi) -> None:
    api = await make_api(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", api_rate_per_s="0.1", api_rate_burst="1"
    )
    url = f"{api.url}/v1/photos/{NO_PHOTO}"
    for _ in range(3):
        # Not 429 and not 500: routes that need no Redis keep working.
        await error_of(await api.http.get(url, headers=api.auth), 404, "photo_not_found")
    # An upload is judged by its own Redis check instead.
    await error_of(await api.upload(b"\xff\xd8\xff"), 503, "queue_unavailable")


async def test_limiter_out_of_connections_refuses_instead_of_failing_open(
    make_api: MakeApi,
) -> None:
    """A process whose Redis pool stays dry is overloaded, not cut off from Redis: the
    limiter must not wave requests through, and uploads are not told the queue is down."""
    api = await make_api(redis_max_connections="2", redis_pool_wait_s="0.2")
    async with _all_connections_taken(api.state.redis):
        url = f"{api.url}/v1/photos/{NO_PHOTO}"
        for headers in ({}, {"Authorization": "Bearer fst_guessed-token"}, api.auth):
            resp = await api.http.get(url, headers=headers)
            await error_of(resp, 503, "server_busy")
            assert resp.headers["Retry-After"] == "1"
        await error_of(await api.upload(b"\xff\xd8\xff"), 503, "server_busy")
        # Past the limiter too, the backlog check leaves it to the error middleware's
        # server_busy rather than calling the queue unavailable.
        with pytest.raises(MaxConnectionsError):
            await check_capacity(api.state)
    await error_of(await api.http.get(url, headers=api.auth), 404, "photo_not_found")
    assert api.blob_files() == []


@asynccontextmanager
async def _all_connections_taken(redis: RedisClient) -> AsyncIterator[None]:
    """Hold every connection of ``redis``'s pool (every turn, on a cluster) for the block."""
    if isinstance(redis, WaitingRedisCluster):
        entered, release = asyncio.Semaphore(0), asyncio.Event()

        async def hold() -> None:
            async with redis.turn():
                entered.release()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(redis.max_turns)]
        for _ in holders:
            await entered.acquire()
        try:
            yield
        finally:
            release.set()
            await asyncio.gather(*holders)
        return
    pool = redis.connection_pool
    held = [await pool.get_connection() for _ in range(pool.max_connections)]
    try:
        yield
    finally:
        for conn in held:
            await pool.release(conn)
