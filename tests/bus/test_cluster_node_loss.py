"""A bus on a Redis Cluster rides out losing the node it listens on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from redis.asyncio.cluster import RedisCluster as ClusterClient

from bench.redis_cluster import RedisCluster
from filmstrip import keys
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.redis_client import open_redis
from filmstrip.services.bus.app import SUBSCRIBER
from filmstrip.settings import load_settings
from tests.bus.support import Account, BusClient, RunningBus
from tests.conftest import redis_env

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def test_the_bus_moves_its_subscription_when_its_cluster_node_goes_away(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
) -> None:
    """On a cluster the bus listens on one node (PUBLISH reaches every node); when that
    node dies it subscribes on another, and the socket still gets its client's events."""
    with RedisCluster(require_full_coverage=False) as cluster:
        first = ("127.0.0.1", cluster.ports[0])
        redis = await open_redis(load_settings(redis_env(cluster.url, "cluster")))
        assert isinstance(redis, ClusterClient)
        try:
            await redis.initialize()
            bus = await start_bus(redis_url=cluster.url, redis_cluster="true")
            # A client whose events live on a node that stays up.
            while True:
                acc = await make_account()
                node = redis.get_node_from_key(keys.client_events(acc.client_id))
                if (node.host, int(node.port)) != first:
                    break
            c = await connect(bus.url)
            await c.identify(acc.token)
            await c.barrier()
            subscriber = bus.app[SUBSCRIBER]
            assert subscriber.node == first
            publisher = EventPublisher(redis)
            before = await _upload_to(publisher, acc, 0)
            assert [m["id"] for m in await c.events(1)] == [before]

            cluster.kill_node(cluster.ports[0])
            after = await _upload_to(publisher, acc, 1)  # while the bus may be moving
            assert [m["id"] for m in await c.events(1, within=15)] == [after]
            assert subscriber.connected and subscriber.node != first
            later = await _upload_to(publisher, acc, 2)
            assert [m["id"] for m in await c.events(1)] == [later]
        finally:
            await redis.aclose()


async def _upload_to(publisher: EventPublisher, acc: Account, n: int) -> str:
    return await publisher.publish(
        ev.PHOTO_UPLOADED, photo_id=acc.photos[0], client_id=acc.client_id,
        trace_id="0" * 32, data={"n": n},
    )  # fmt: skip
