"""A TCP proxy on loopback that can drop every connection and refuse new ones for a while:
an outage of the service behind it without losing that service's state."""

from __future__ import annotations

import asyncio
import contextlib

from filmstrip.embedded.redis_server import free_port


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; ``pause``/``resume`` fake an outage."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        port: int | None = None,
        upload_bytes_per_s: float | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        # Client-to-target bytes per second, per connection: a slow uplink to cut mid-way.
        self.upload_bytes_per_s = upload_bytes_per_s
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )

    async def pause(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        for task in list(self._pipes):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def resume(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.pause()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        up_w: asyncio.StreamWriter | None = None
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
            await asyncio.gather(
                self._copy(reader, up_w, self.upload_bytes_per_s), self._copy(up_r, writer)
            )
        except (OSError, asyncio.CancelledError):
            # Cancelled by pause(): the cut connection is the point, not an error.
            pass
        finally:
            for w in (writer, up_w):
                if w is not None:
                    w.close()
            self._pipes.discard(task)

    @staticmethod
    async def _copy(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, rate: float | None = None
    ) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
                if rate:
                    await asyncio.sleep(len(data) / rate)
        except (ConnectionError, OSError, RuntimeError):
            # RuntimeError: uvloop's word for writing to a transport pause() just closed.
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.write_eof()
