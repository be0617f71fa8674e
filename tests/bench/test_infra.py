"""The multi-host soak's shared services on their own host: SeaweedFS (a real S3 that
checks signatures), PostgreSQL and Redis, reached from another host, restarted with
their data, and gone without a trace once stopped."""

from __future__ import annotations

import asyncio
import glob
from collections.abc import Iterator

import pytest
import redis

from bench.hosts import Network, in_netns
from bench.hosts import unavailable as hosts_unavailable
from bench.infra import HostPostgres, HostRedis
from bench.seaweed import SeaweedFS
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.errors import FilmstripError
from filmstrip.settings import load_settings

SOCKETS = "/tmp/seaweedfs-*.sock"
why = hosts_unavailable()
pytestmark = pytest.mark.skipif(why is not None, reason=f"separate hosts: {why}")


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with Network() as net:
        net.host("infra")
        net.host("app")
        net.host("clients", boot=False)
        yield net


def _clients(network: Network) -> str:
    return network.hosts["clients"].netns


async def _roundtrip(s3: SeaweedFS, secret: str) -> bytes:
    env = {**s3.env("filmstrip"), "FILMSTRIP_S3_SECRET_ACCESS_KEY": secret}
    store = await S3BlobStore.from_settings("s3://filmstrip", load_settings(env))
    try:
        await store.put_bytes("k/one", b"payload", content_type="application/octet-stream")
        return await store.get_bytes("k/one")
    finally:
        await store.close()


def test_seaweedfs_serves_s3_with_its_keys_only(network: Network) -> None:
    infra = network.hosts["infra"]
    before = set(glob.glob(SOCKETS))
    s3 = SeaweedFS(infra, access_key="test-key", secret_key="test-secret")
    in_netns(_clients(network), s3.start)
    try:
        got = in_netns(_clients(network), lambda: asyncio.run(_roundtrip(s3, "test-secret")))
        assert got == b"payload"
        # It checks signatures: a wrong secret gets nothing in or out.
        with pytest.raises(FilmstripError):
            in_netns(_clients(network), lambda: asyncio.run(_roundtrip(s3, "wrong")))
        # Its data is on the infra host's disk, its sockets (which take no path) on the
        # host's own /tmp, not the machine's.
        assert (infra.outside("seaweed") / "s3.json").exists()
        assert f"seaweedfs-s3-{s3.S3_PORT}.sock" in infra.run(["ls", "/tmp"]).split()
        assert f"/tmp/seaweedfs-s3-{s3.S3_PORT}.sock" not in set(glob.glob(SOCKETS)) - before
    finally:
        s3.stop()
    assert s3.proc is None


def test_postgres_takes_the_subnet_and_keeps_its_data_across_a_restart(
    network: Network,
) -> None:
    infra, app = network.hosts["infra"], network.hosts["app"]
    pg = HostPostgres(infra)
    pg.init()
    in_netns(_clients(network), pg.start)
    try:
        url = pg.create_database("soak")
        psql = [str(pg.bin / "psql"), url, "-At", "-v", "ON_ERROR_STOP=1", "-c"]
        # From another host, over the network, with trust for the harness's subnet.
        app.run([*psql, "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"])
        assert app.run([*psql, "SELECT inet_server_addr()"]).strip() == infra.address
        in_netns(_clients(network), pg.restart)
        assert app.run([*psql, "SELECT v FROM t"]).strip() == "kept"
    finally:
        pg.stop()
    assert pg.proc is None and pg.postmaster_pid() is None


def test_redis_on_the_infra_host_keeps_its_data_across_a_restart(network: Network) -> None:
    server = HostRedis(network.hosts["infra"])

    def use() -> bytes | None:
        server.start()
        try:
            client = redis.Redis.from_url(server.url)
            client.set("k", "kept")
            server.restart()
            value = redis.Redis.from_url(server.url).get("k")
            return value if isinstance(value, bytes) else None
        finally:
            server.stop()

    assert in_netns(_clients(network), use) == b"kept"
    assert server.url.startswith(f"redis://{network.hosts['infra'].address}:")
