"""Session-wide real services: a private redis-server; helpers for the corpus."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.support import postgres
from tests.support.moto_server import MotoServer
from tests.support.redis_server import RedisServer

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server (appendonly) for the whole run."""
    server = RedisServer(appendonly=True)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on the private server; the database is emptied after each test."""
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    try:
        await client.flushall()
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Every PostgreSQL database a test made is dropped after it (connections or not)."""
    yield
    if postgres.made:
        postgres.drop_made()


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[postgres.PrivatePostgres]:
    """A postgres of the run's own, for tests that stop and start it (each leaves it up)."""
    server = postgres.PrivatePostgres()
    try:
        server.init()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        server.cleanup()
        pytest.skip(f"cannot run a private postgres: {exc}")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus folder {CORPUS} is absent (tests that need photos are skipped)")
    return CORPUS


@pytest.fixture(scope="session")
def manifest(corpus: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((corpus / "manifest.json").read_text())
    return entries


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 endpoint on loopback; tests may stop and start it to fake an outage."""
    server = MotoServer()
    server.start()
    yield server
    server.stop()
