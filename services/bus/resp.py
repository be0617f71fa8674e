"""Just enough RESP2 to read a pub/sub connection: arrays, bulk and simple strings,
integers and errors, parsed from a buffer without copying more than each value."""

from __future__ import annotations

from typing import Union

Value = Union[bytes, int, None, "RespError", list["Value"]]


class RespError(Exception):
    """An error reply (``-ERR ...``)."""


class Incomplete(Exception):
    """The buffer ends inside a value: wait for more bytes."""


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


def command(*parts: str | bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
