"""Redis Cluster helpers of the tests (the cluster itself is :mod:`bench.redis_cluster`)."""

from __future__ import annotations

import types
from typing import Any

from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.commands.core import AsyncScript


async def strict_scripts(client: ClusterClient) -> bool:
    """Make every Lua script ``client`` registers from now on run in Redis 7's strict mode
    (a ``#!lua`` first line): then a script that touches a key of another slot fails, even
    a key it builds itself on a node that happens to own both slots (a script without the
    line may). False, changing nothing, on a Redis older than 7."""
    info = await client.info("server", target_nodes=ClusterClient.RANDOM)
    if int(str(info["redis_version"]).split(".")[0]) < 7:
        return False
    register = client.register_script

    def strict(self: Any, script: str | bytes) -> AsyncScript:
        text = script if isinstance(script, str) else script.decode()
        return register("#!lua\n" + text)

    client.register_script = types.MethodType(strict, client)  # type: ignore[method-assign]
    return True
