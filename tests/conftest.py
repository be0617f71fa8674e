"""Session-wide real services: a private redis-server, a private 3-node Redis Cluster
(started only if a test asks for it); helpers for the corpus.

A test module marked ``both_redis`` runs each of its tests twice, on the single server and
on the cluster, through the ``redis_kind`` / ``redis_url`` / ``redis`` fixtures; a test in
it that asks for ``redis_server`` itself (to restart or kill it) runs on the single one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from bench.moto_server import MotoServer
from bench.redis_cluster import RedisCluster
from bench.redis_server import RedisServer
from filmstrip.embedded.redis_server import redis_server_binary
from filmstrip.redis_client import RedisClient, open_redis
from filmstrip.settings import load_settings
from tests.support import postgres
from tests.support.redis_cluster import strict_scripts

REDIS_KINDS = ("single", "cluster")


def pytest_sessionstart(session: pytest.Session) -> None:
    """A run told to use other engines (scripts/test's second pass) must use them, not
    pass quietly on the defaults."""
    if postgres.catalog_backend() == "postgresql" and (reason := postgres.unreachable()):
        raise pytest.UsageError(f"FILMSTRIP_TEST_CATALOG=postgresql, but {reason}")
    wanted = os.environ.get("FILMSTRIP_TEST_REDIS_SERVER")
    if wanted and redis_server_binary() != wanted:
        raise pytest.UsageError(
            f"FILMSTRIP_TEST_REDIS_SERVER={wanted}, but redis-server on PATH is "
            f"{redis_server_binary()}"
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (
        "redis_kind" in metafunc.fixturenames
        and metafunc.definition.get_closest_marker("both_redis") is not None
        and "redis_server" not in metafunc.fixturenames
    ):
        metafunc.parametrize("redis_kind", REDIS_KINDS, indirect=True)


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server (appendonly) for the whole run."""
    server = RedisServer(appendonly=True)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """One private 3-node Redis Cluster for the whole run (about 2 s to start)."""
    cluster = RedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def redis_kind(request: pytest.FixtureRequest) -> str:
    """``single`` or ``cluster``: which Redis the test runs on (``both_redis`` runs both)."""
    return getattr(request, "param", "single")


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, redis_kind: str) -> str:
    """The URL of the Redis this test runs on."""
    server = request.getfixturevalue("redis_cluster" if redis_kind == "cluster" else "redis_server")
    url: str = server.url
    return url


def redis_env(redis_url: str, redis_kind: str) -> dict[str, str]:
    """The ``FILMSTRIP_REDIS_*`` settings of a role on this test's Redis."""
    return {
        "FILMSTRIP_REDIS_URL": redis_url,
        "FILMSTRIP_REDIS_CLUSTER": "true" if redis_kind == "cluster" else "false",
    }


@pytest.fixture
async def redis(redis_url: str, redis_kind: str) -> AsyncIterator[RedisClient]:
    """A client (the roles' own) on the test's Redis; every node is emptied after each test."""
    client = await open_redis(load_settings(redis_env(redis_url, redis_kind)))
    if isinstance(client, ClusterClient):
        # Scripts the test registers through it may touch no key of another slot.
        await strict_scripts(client)
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
