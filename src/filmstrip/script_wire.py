"""A lean caller for hot Lua scripts: the queue consumer's, the event publisher's.

redis-py re-encodes every argument of every call and wraps each command in several layers
of bookkeeping; for STEP, called once per job at concurrency 1, that cost as much as the
round trip itself. Here the script's constant part (EVALSHA, sha, keys, base arguments) is
encoded once and the call goes straight to a pooled connection (``bench/script_calls.py``;
the RESP it writes and redis-py's connection API it uses are in ``filmstrip.compat.redis``).

On a Redis Cluster the call goes through redis-py's cluster client instead, which routes
it to the node owning the keys' slot and follows the cluster when slots move or a node
fails over: redoing that here would save ~50 µs of client CPU per call (measured: 153 vs
100 µs a call on loopback), little next to a round trip to a cluster on the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from filmstrip.compat.redis import bulk, send_packed
from filmstrip.redis_client import RedisClient, unreachable_as_connection_error

#: At most this many connections a wire keeps out of the pool between calls.
KEEP_IDLE = 2


class ScriptWire:
    """Runs one registered script with pre-encoded keys and leading arguments (or, with
    :meth:`call`, keys given per call).

    With ``reconnect``, a call whose kept connection turns out dead (Redis restarted since)
    is sent once more on a fresh one, as redis-py's own retry would: only for scripts that
    may run twice when a reply is lost.
    """

    def __init__(
        self,
        redis: RedisClient,
        script: AsyncScript,
        keys: Sequence[bytes] = (),
        base_args: Sequence[bytes] = (),
        *,
        reconnect: bool = False,
    ) -> None:
        self._redis = redis
        self._script = script
        self._reconnect = reconnect
        self._cluster = redis if isinstance(redis, RedisCluster) else None
        self._keys = list(keys)
        self._base_args = list(base_args)
        self._sha = bulk(script.sha)
        fixed = [b"EVALSHA", script.sha.encode(), b"%d" % len(keys), *keys, *base_args]
        self._fixed = len(fixed)
        self._head = b"".join(bulk(part) for part in fixed)
        # Connections kept out of the pool between calls: taking one from the pool and
        # giving it back costs more than the call's own client work. Only a few: a burst
        # of concurrent calls would otherwise keep every connection it took, and the
        # pool's other callers would wait for connections that never come back.
        self._idle: list[Any] = []

    async def __call__(self, args: Sequence[Any]) -> Any:
        """Run the script with ``args`` after the base arguments; loads it after a flush."""
        if self._cluster is not None:
            return await self._on_cluster(self._cluster, self._keys, [*self._base_args, *args])
        packed = b"".join([
            b"*%d\r\n" % (self._fixed + len(args)),
            self._head,
            *[bulk(a) for a in args],
        ])  # fmt: skip
        return await self._run(packed)

    async def encoded(self, args: Sequence[Any], encoded: bytes) -> Any:
        """Run the script with ``args``, given also as ``encoded``: their RESP bulk strings
        joined (kept per caller where they repeat; the cluster path sends ``args``)."""
        if self._cluster is not None:
            return await self._on_cluster(self._cluster, self._keys, [*self._base_args, *args])
        return await self._run(b"*%d\r\n%b%b" % (self._fixed + len(args), self._head, encoded))

    async def call(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script with these ``keys`` and ``args`` (on a wire made without keys
        or base arguments)."""
        if self._cluster is not None:
            return await self._on_cluster(self._cluster, keys, args)
        packed = b"".join([
            b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + len(keys) + len(args)),
            self._sha,
            bulk(len(keys)),
            *[bulk(a) for a in (*keys, *args)],
        ])  # fmt: skip
        return await self._run(packed)

    async def _on_cluster(
        self, cluster: RedisCluster, keys: Sequence[Any], args: Sequence[Any]
    ) -> Any:
        if self._reconnect or not keys:
            # redis-py sends it again on a fresh connection (and to the slot's new owner).
            return await self._script(keys=keys, args=args)
        # To the slot's node without redis-py's retries: a script whose reply was lost
        # must not run twice. MOVED and ASK are still followed (they mean it did not run).
        with unreachable_as_connection_error():
            await cluster.initialize()
            node = cluster.get_node_from_key(keys[0])
        command = ("EVALSHA", self._script.sha, len(keys), *keys, *args)
        try:
            return await cluster.execute_command(*command, target_nodes=node)
        except redis.exceptions.NoScriptError:
            await cluster.script_load(self._script.script)
            return await cluster.execute_command(*command, target_nodes=node)

    async def _run(self, packed: bytes) -> Any:
        try:
            return await self._send_loading(packed)
        except redis.exceptions.MaxConnectionsError:
            raise  # the pool is busy, not the connection dead: a retry would wait again
        except redis.exceptions.ConnectionError:
            if not self._reconnect:
                raise
            # _send dropped the dead connection; the pool gives a fresh one.
            return await self._send_loading(packed)

    async def _send_loading(self, packed: bytes) -> Any:
        try:
            return await self._send(packed)
        except redis.exceptions.NoScriptError:
            # A restarted Redis forgot the script. The load goes through the pool, so the
            # connections kept here go back first: on a pool no larger, it waited for them.
            await self.aclose()
            await self._redis.script_load(self._script.script)
            return await self._send(packed)

    async def _send(self, packed: bytes) -> Any:
        assert isinstance(self._redis, aioredis.Redis)
        pool = self._redis.connection_pool
        conn = self._idle.pop() if self._idle else await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            reply = await send_packed(conn, packed)
        except redis.exceptions.ResponseError:
            await self._keep(conn)
            raise
        except BaseException:
            # A cancelled or broken call leaves a reply unread on the socket.
            await conn.disconnect()
            await pool.release(conn)
            raise
        await self._keep(conn)
        return reply

    async def _keep(self, conn: Any) -> None:
        if len(self._idle) < KEEP_IDLE:
            self._idle.append(conn)
        else:
            assert isinstance(self._redis, aioredis.Redis)
            await self._redis.connection_pool.release(conn)

    async def aclose(self) -> None:
        """Give the kept connections back to the pool."""
        if not isinstance(self._redis, aioredis.Redis):
            return
        pool = self._redis.connection_pool
        while self._idle:
            await pool.release(self._idle.pop())
