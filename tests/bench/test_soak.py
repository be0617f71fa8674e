"""The chaos soak at a small size: workers SIGKILLed, Redis restarted, S3 cut, bus
restarted while clients upload; nothing lost, duplicated, stuck or orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.moto_server import MotoServer
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env

ROOT = Path(__file__).resolve().parents[2]
# The bench runs this checkout's code, not the installed package.
CHECKOUT = {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}

# A run takes 20-35 s here; the soak's own waits for a missing event end well before this.
LIMIT_S = 150


def _soak(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the soak to its end; the test fails past ``LIMIT_S``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.soak", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **CHECKOUT, **(env or {})},
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        # Interrupted, the soak stops its cluster and says where it kept the logs; its
        # progress lines say what it was waiting for.
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"the soak took over {LIMIT_S} s:\n{stdout[-4000:]}\n{stderr[-4000:]}")
    print(stdout[-4000:], stderr[-2000:])
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.timeout(LIMIT_S + 60)
def test_small_chaos_soak_keeps_every_guarantee(corpus: Path) -> None:
    proc = _soak("-n", "40", "--clients", "8", "--fast")
    stdout = proc.stdout
    assert "restart Redis" in stdout and "restart the bus" in stdout
    assert "S3 unreachable" in stdout
    assert "RESULT: ok" in stdout, stdout
    assert proc.returncode == 0


@pytest.mark.timeout(LIMIT_S + 60)
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a CPU to set aside")
def test_clean_soak_with_s3_off_the_measured_cpus(corpus: Path) -> None:
    # Two uploads a client: the bare pipeline runs four times on a sample of the run's size
    # (and warms up on as many), so the size of the run is most of this test's time.
    proc = _soak("--clean", "--aside-cpus", "1", "-n", "8", "--clients", "4")
    stdout = proc.stdout
    cpus = sorted(os.sched_getaffinity(0))
    assert f"CPUs {cpus[:-1]}: the system and the bare pipeline" in stdout, stdout
    assert f"on {len(cpus) - 1} cores" in stdout  # the budget is the measured CPUs'
    assert "ratio end-to-end / bare" in stdout
    assert "RESULT: ok" in stdout, stdout
    assert proc.returncode == 0


@pytest.mark.timeout(LIMIT_S + 60)
def test_clean_soak_on_an_s3_it_did_not_start(corpus: Path) -> None:
    # An S3 elsewhere (MinIO, AWS) is what --s3-endpoint is for; a moto this test started
    # stands in for it. The soak must use it with the environment's credentials, make a
    # bucket of its own, verify there, and remove the bucket after a good run.
    with MotoServer() as s3:
        creds = {"AWS_ACCESS_KEY_ID": "elsewhere", "AWS_SECRET_ACCESS_KEY": "elsewhere"}
        proc = _soak("--clean", "--s3-endpoint", s3.url, "-n", "6", "--clients", "3", env=creds)
        stdout = proc.stdout
        assert f"blobs S3 at {s3.url}, bucket filmstrip-soak-" in stdout, stdout
        assert "s3 (moto)" not in stdout  # no moto of its own to count
        assert "ratio end-to-end / bare" in stdout
        assert "RESULT: ok" in stdout, stdout
        assert proc.returncode == 0
        assert asyncio.run(_buckets(s3)) == []


async def _buckets(s3: MotoServer) -> list[Any]:
    """The buckets at ``s3``, through the project's own client (aioboto3)."""
    url = "s3://any"
    store = await S3BlobStore.from_settings(url, load_settings(s3_env(s3, url)))
    try:
        return list((await store.client.list_buckets())["Buckets"])
    finally:
        await store.close()


def test_an_s3_endpoint_goes_with_clean_only() -> None:
    proc = _soak("--s3-endpoint", "http://127.0.0.1:9", "-n", "1")
    assert proc.returncode == 2
    assert "--s3-endpoint goes with --clean" in proc.stderr
