"""A lean caller for the consumer's hot Lua scripts.

redis-py re-encodes every argument of every call and wraps each command in several layers
of bookkeeping; for STEP, called once per job at concurrency 1, that cost as much as the
round trip itself. Here the script's constant part (EVALSHA, sha, keys, base arguments) is
encoded once and the call goes straight to a pooled connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.core import AsyncScript


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int):
        return b"%d" % value
    raise TypeError(f"cannot send {type(value).__name__} to a queue script")


class ScriptWire:
    """Runs one registered script with pre-encoded keys and leading arguments."""

    def __init__(
        self,
        redis: aioredis.Redis,
        script: AsyncScript,
        keys: Sequence[bytes],
        base_args: Sequence[bytes],
    ) -> None:
        self._redis = redis
        self._script = script
        fixed = [b"EVALSHA", script.sha.encode(), b"%d" % len(keys), *keys, *base_args]
        self._fixed = len(fixed)
        self._head = b"".join(_bulk(part) for part in fixed)
        # Connections kept out of the pool between calls: taking one from the pool and
        # giving it back costs more than the call's own client work.
        self._idle: list[Any] = []

    async def __call__(self, args: Sequence[Any]) -> Any:
        """Run the script with ``args`` after the base arguments; loads it after a flush."""
        packed = b"".join([
            b"*%d\r\n" % (self._fixed + len(args)),
            self._head,
            *[_bulk(_encode(a)) for a in args],
        ])  # fmt: skip
        try:
            return await self._send(packed)
        except redis.exceptions.NoScriptError:
            # A restarted Redis forgot the script.
            await self._redis.script_load(self._script.script)
            return await self._send(packed)

    async def _send(self, packed: bytes) -> Any:
        pool = self._redis.connection_pool
        conn = self._idle.pop() if self._idle else await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(packed, check_health=False)
            reply = await conn.read_response()
        except redis.exceptions.ResponseError:
            self._idle.append(conn)
            raise
        except BaseException:
            # A cancelled or broken call leaves a reply unread on the socket.
            await conn.disconnect()
            await pool.release(conn)
            raise
        self._idle.append(conn)
        return reply

    async def aclose(self) -> None:
        """Give the kept connections back to the pool."""
        pool = self._redis.connection_pool
        while self._idle:
            await pool.release(self._idle.pop())
