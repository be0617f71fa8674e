"""A moto S3 server the tests own: a real HTTP endpoint on loopback they can stop and start."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

from filmstrip.embedded.processes import stop_process
from tests.support.redis_server import free_port


class MotoServer:
    """``python -m moto.server`` in a subprocess; ``stop``/``start`` keep the port (and lose
    the data: moto keeps everything in memory)."""

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> None:
        if self.proc is not None:
            return
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"moto.server exited with {code}")
            try:
                # moto answers its dashboard root once the server is up.
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=0.5):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is listening
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto.server did not answer within {timeout} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, 10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
