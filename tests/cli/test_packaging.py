"""The installed distribution (``pip install .``, not the checkout) runs a role: its
console script starts from an empty folder and serves the packaged pages and schemas."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.redis_server import RedisServer
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import env_without_filmstrip

SCRIPT = Path(sys.executable).parent / "filmstrip"
_PROBE = (
    "import importlib.util, filmstrip.services.api as api\n"
    "print(api.__file__)\n"
    "print(importlib.util.find_spec('services'), importlib.util.find_spec('protocols'))"
)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status), resp.read()
    except Exception:
        return 0, b""


@pytest.mark.skipif(not SCRIPT.exists(), reason="filmstrip is not installed in this venv")
def test_installed_console_script_serves_from_the_package(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    port = free_port()
    env = env_without_filmstrip()
    env.pop("PYTHONPATH", None)  # the installed copy, not this checkout
    env.update(FILMSTRIP_DATA_DIR=str(tmp_path), FILMSTRIP_REDIS_URL=redis_server.url)
    env["FILMSTRIP_API_PORT"] = str(port)
    proc = subprocess.Popen(
        [str(SCRIPT), "api"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _get(f"http://127.0.0.1:{port}/healthz")[0] != 200:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"<html" in page.lower()
        status, script = _get(f"http://127.0.0.1:{port}/static/js/gallery.js")
        assert status == 200 and script
        status, doc = _get(f"http://127.0.0.1:{port}/v1/openapi.json")
        assert status == 200 and b'"openapi"' in doc
        # The roles and contracts are installed under the product's name only: nothing
        # called services or protocols lands in site-packages to collide with another's.
        out = subprocess.run(
            [sys.executable, "-c", _PROBE], cwd=tmp_path, env=env, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
        where, top_level = out.stdout.splitlines()
        assert "site-packages" in where and top_level == "None None", out.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=30)
