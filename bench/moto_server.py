"""A moto S3 server of the benches and tests: a real HTTP endpoint on loopback they can stop
and start."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from filmstrip.embedded.redis_server import free_port

# moto's S3 app (bench/moto_app.py) served by granian, an HTTP server in Rust.
# ``python -m moto.server`` runs werkzeug's development server, which closes the connection
# after every response and starts a thread per connection: every S3 request then pays a new
# TCP connection on both sides, a cost no real S3 endpoint has (measured: 1.4 -> 0.9 ms of
# moto CPU and 1.45 -> 1.06 ms of client CPU per request with keep-alive). Serving only
# the S3 app also skips the all-services dispatcher, which stat()s moto's ~190 module
# folders to find each request's service.
_ROOT = Path(__file__).resolve().parents[1]
_ARGS = [
    *("-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1"),
    *("--workers", "1", "--blocking-threads", "4", "--no-ws", "--log-level", "error"),
]
_APP = "bench.moto_app:app"


class MotoServer:
    """moto's S3 server in a subprocess; ``stop``/``start`` keep the port (and lose
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
        args = [sys.executable, *_ARGS, "--port", str(self.port), _APP]
        # Its own process group: granian serves from a child process, and stop() must
        # take both down even when the parent is killed.
        self.proc = subprocess.Popen(
            args,
            cwd=_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"the moto S3 server exited with {code}")
            try:
                # S3 answers a bucket listing once the server is up.
                with urllib.request.urlopen(self.url + "/", timeout=0.5):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is listening
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the moto S3 server did not answer within {timeout} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        # The serving child outlives a parent that exits first; nothing of the group may
        # keep the port.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
