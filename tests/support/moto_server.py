"""A moto S3 server the tests own: a real HTTP endpoint on loopback they can stop and start."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request

from filmstrip.embedded.processes import stop_process
from tests.support.redis_server import free_port

# moto's S3 app alone, served as ``python -m moto.server`` serves every service. The
# all-services dispatcher finds each request's service by stat()ing moto's ~190 module
# folders: over a third of moto's CPU per S3 request, a cost no real S3 endpoint has.
_S3_ONLY = """
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app

app = create_backend_app("s3")
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True, request_handler=MotoRequestHandler)
"""


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
        args = [sys.executable, "-c", _S3_ONLY, str(self.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"moto.server exited with {code}")
            try:
                # S3 answers a bucket listing once the server is up.
                with urllib.request.urlopen(self.url + "/", timeout=0.5):
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
