"""The shared services of the multi-host soak on their own host: Redis (append-only) and a
private PostgreSQL, listening on that host's address for the harness's subnet only; the S3
server is :mod:`bench.seaweed`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Collection
from pathlib import Path

from bench.hosts import SUBNET, Host, assert_in_test_network
from filmstrip.embedded.redis_server import RedisServer

PG_BIN = Path("/usr/lib/postgresql")


class HostRedis(RedisServer):
    """The embedded redis-server, on ``host``'s address, data on its disk."""

    def __init__(self, host: Host, *, port: int = 6379, cpus: Collection[int] | None = None):
        super().__init__(host.disk / "redis", port=port, appendonly=True, host=host.address)
        self.on = host
        self.cpus = cpus

    def argv(self) -> list[str]:
        # Off loopback Redis refuses clients in protected mode; only the harness's
        # namespaces can reach this address.
        return [*super().argv(), "--protected-mode", "no"]

    def launch(self, argv: list[str]) -> subprocess.Popen[bytes]:
        self.on.outside("redis").mkdir(exist_ok=True)
        return self.on.popen(argv, log="redis", cpus=self.cpus)

    def _answers(self) -> bool:
        assert_in_test_network()
        return super()._answers()


class HostPostgres:
    """A private PostgreSQL on ``host`` (initdb on its disk, run as the ``postgres`` user),
    trusting the harness's subnet; ``restart`` keeps its data."""

    def __init__(self, host: Host, *, port: int = 5432, cpus: Collection[int] | None = None):
        versions = sorted(PG_BIN.glob("*/bin/initdb"))
        if not versions:
            raise RuntimeError(f"no initdb under {PG_BIN}")
        self.bin = versions[-1].parent
        self.host = host
        self.port = port
        self.cpus = cpus
        self.data = host.disk / "pg"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host.address}:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@{self.host.address}:{self.port}/{name}"

    def init(self) -> None:
        """initdb, then trust the harness's subnet (and nothing else) over TCP."""
        folder = self.host.outside("pg")
        folder.mkdir(mode=0o700)
        shutil.chown(folder, "postgres", "postgres")
        self.host.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / "initdb"), "-D", str(self.data),
             "-U", "postgres", "--auth=trust", "--no-sync"],
        )  # fmt: skip
        hba = self.host.outside("pg") / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            f"host all all {SUBNET}.0/24 trust\n"
        )  # fmt: skip

    def start(self, *, timeout: float = 30.0) -> None:
        """Start it and wait until it takes connections."""
        argv = [
            "runuser", "-u", "postgres", "--", str(self.bin / "postgres"), "-D", str(self.data),
            "-p", str(self.port), "-k", str(self.data),
            "-c", f"listen_addresses={self.host.address}",
            # Data on tmpfs: nothing to sync; the soak's writers share two cores.
            "-c", "fsync=off", "-c", "max_connections=300",
        ]  # fmt: skip
        self.proc = self.host.popen(argv, log="postgres", cpus=self.cpus)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {self.host.read_log('postgres')}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        import socket

        assert_in_test_network()
        # An SSLRequest: a postgres that accepts connections answers it with one byte.
        try:
            with socket.create_connection((self.host.address, self.port), timeout=0.5) as s:
                s.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
                if s.recv(1) not in (b"S", b"N"):
                    return False
        except OSError:
            return False
        # The postmaster answers during start-up too; ready once pg_isready says so.
        try:
            self.host.run([str(self.bin / "pg_isready"), "-q", "-U", "postgres",
                           "-h", self.host.address, "-p", str(self.port)], timeout=5)  # fmt: skip
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            return int((self.host.outside("pg") / "postmaster.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        """Fast shutdown (sessions are cut, as when a server goes away)."""
        if self.proc is None:
            return
        if self.proc.poll() is None and (pid := self.postmaster_pid()) is not None:
            # To the postmaster itself: runuser does not pass SIGINT on.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        """A new database ``name``; its URL."""
        self.host.run([str(self.bin / "psql"), "-h", str(self.data), "-p", str(self.port),
                       "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                       "-c", f'CREATE DATABASE "{name}"'])  # fmt: skip
        return self.database_url(name)
