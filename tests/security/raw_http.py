"""Bytes to an HTTP server over a plain socket, for requests aiohttp's client will not send
(bytes that are not UTF-8 in headers, duplicate or negative Content-Length, NUL in a path)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

# Generous: the server answers at once; this only stops a hung test.
WAIT_S = 10.0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def error(self) -> dict[str, str]:
        """The ``{"error": {"code", "message"}}`` body, asserting its shape."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        error = orjson.loads(self.body)["error"]
        assert isinstance(error["code"], str) and error["code"], self
        assert isinstance(error["message"], str) and error["message"], self
        return error  # type: ignore[no-any-return]


async def exchange(url: str, request: bytes) -> Reply:
    """Send ``request`` as is to the server at ``url`` and read one response."""
    split = urlsplit(url)
    assert split.hostname is not None and split.port is not None
    reader, writer = await asyncio.open_connection(split.hostname, split.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        # A HEAD response announces a body it does not send.
        length = 0 if request.startswith(b"HEAD ") else int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), WAIT_S)
        return Reply(status=int(status_line.split(" ", 2)[1]), headers=headers, body=body)
    finally:
        writer.close()
