"""Where Filmstrip speaks RESP past redis-py's client, kept for measured gains. Fits
redis-py 8.2.

The queue's and the publisher's scripts go out through
:class:`~filmstrip.script_wire.ScriptWire`, sent with :func:`send_packed` on a connection of
redis-py's pool (its ``send_packed_command`` and ``read_response``): 0.36-0.52x the client
CPU of redis-py's own script call (``bench/script_calls.py``). The bus parses its pub/sub
subscription itself: 0.46x the CPU per event of redis-py's ``PubSub``
(``bench/bus_subscription.py``). Both use this one RESP2 codec; ``tests/compat/test_redis.py``
fails loudly when redis-py writes commands otherwise or changes that connection API.
"""

from __future__ import annotations

from typing import Any, Union

#: The redis-py release the connection API used here was read from.
REDIS_PY_VERSION = "8.2"

Value = Union[bytes, int, None, "RespError", list["Value"]]


class RespError(Exception):
    """An error reply (``-ERR ...``)."""


class Incomplete(Exception):
    """The buffer ends inside a value: wait for more bytes."""


def bulk(value: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string (an int as its decimal digits)."""
    if isinstance(value, bytes):
        pass
    elif isinstance(value, str):
        value = value.encode()
    elif isinstance(value, int):
        value = b"%d" % value
    else:
        raise TypeError(f"cannot send {type(value).__name__} to Redis")
    return b"$%d\r\n%b\r\n" % (len(value), value)


def command(*parts: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    return b"*%d\r\n%b" % (len(parts), b"".join([bulk(part) for part in parts]))


async def send_packed(connection: Any, packed: bytes) -> Any:
    """Send one packed command on a connection of redis-py's pool; its parsed reply."""
    await connection.send_packed_command(packed, check_health=False)
    return await connection.read_response()


def parse(buf: bytearray | bytes, pos: int) -> tuple[Value, int]:
    """The value starting at ``pos`` and the position after it; raise
    :class:`Incomplete` if the buffer ends first."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        raise Incomplete
    kind = buf[pos]
    if kind == 0x24:  # $ bulk string
        size = int(buf[pos + 1 : nl])
        if size < 0:
            return None, nl + 2
        start = nl + 2
        end = start + size
        if len(buf) < end + 2:
            raise Incomplete
        return bytes(buf[start:end]), end + 2
    if kind == 0x2A:  # * array
        count = int(buf[pos + 1 : nl])
        if count < 0:
            return None, nl + 2
        pos = nl + 2
        items: list[Value] = []
        for _ in range(count):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 0x3A:  # : integer
        return int(buf[pos + 1 : nl]), nl + 2
    if kind == 0x2B:  # + simple string
        return bytes(buf[pos + 1 : nl]), nl + 2
    if kind == 0x2D:  # - error
        return RespError(bytes(buf[pos + 1 : nl]).decode(errors="replace")), nl + 2
    raise ValueError(f"not RESP2: {bytes(buf[pos : pos + 16])!r}")
