"""What ``filmstrip/compat/redis.py`` relies on in redis-py, and its one RESP codec: this
fails loudly when a redis-py upgrade changes the connection API the script wire sends on,
or writes commands otherwise than our codec does."""

from __future__ import annotations

import inspect

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, Connection, ConnectionPool

from filmstrip.compat import redis as compat


def test_redis_py_is_the_release_the_connection_api_was_read_from() -> None:
    assert redis.__version__.startswith(compat.REDIS_PY_VERSION + "."), (
        f"redis-py {redis.__version__}: re-read its connections' send_packed_command and"
        " read_response and its pools' get_connection and release, then update"
        " filmstrip/compat/redis.py"
    )


def test_the_connection_api_has_the_shape_the_script_wire_uses() -> None:
    params = list(inspect.signature(AbstractConnection.send_packed_command).parameters)
    assert params == ["self", "command", "check_health"]
    assert inspect.iscoroutinefunction(AbstractConnection.read_response)
    assert inspect.iscoroutinefunction(ConnectionPool.get_connection)
    assert inspect.iscoroutinefunction(ConnectionPool.release)


@pytest.mark.parametrize(
    "parts",
    [
        ("PING",),
        ("SUBSCRIBE", "photo:upload", b"photo:processing"),
        ("EVAL", "return 1", 2, b"{q}:a", "{q}:b", 0, -7, 1_700_000_000_000),
        ("SET", "ü", b"\x00\r\n$3\r\n", ""),
    ],
)
def test_commands_are_written_as_redis_py_writes_them(parts: tuple[bytes | str | int]) -> None:
    assert compat.command(*parts) == b"".join(Connection().pack_command(*parts))


def test_an_unsendable_argument_is_refused() -> None:
    with pytest.raises(TypeError):
        compat.bulk(1.5)  # type: ignore[arg-type]


async def test_a_packed_command_goes_out_on_a_pooled_connection(redis: aioredis.Redis) -> None:
    pool = redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        assert await compat.send_packed(connection, compat.command("SET", "compat:k", 7)) == b"OK"
        reply = await compat.send_packed(connection, compat.command("GET", "compat:k"))
        assert reply == b"7"
    finally:
        await pool.release(connection)
