"""The worker's pipeline threads, and the libvips threads they start, run as batch work in
long slices; its event loop does not. Checked in separate processes, by reading each
thread's ``sched_attr`` back from the kernel."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.redis_server import RedisServer
from filmstrip.cpu_slices import read_attr
from filmstrip.embedded.supervisor import env_without_filmstrip
from filmstrip.settings import sqlite_url

ROOT = Path(__file__).resolve().parents[1]
ENV = {**env_without_filmstrip(), "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}

if read_attr(0) is None:
    pytest.skip("no sched_getattr here (Linux on x86_64 or aarch64 only)", allow_module_level=True)

# Linux 6.12 made a normal task's sched_attr runtime its slice; older kernels read back 0.
SLICES_KEPT = tuple(int(p) for p in platform.release().split(".")[:2]) >= (6, 12)

# The pipeline's pool with batch slices, after a photo's worth of libvips work in it;
# prints each thread's name, policy, nice and slice, the main thread first.
PROGRAM = """
import asyncio, json, os, sys
import pyvips
from filmstrip.concurrency import configure_pool, run_blocking
from filmstrip.cpu_slices import read_attr
os.nice(2)  # Linux: this thread's nice, inherited by the threads it starts; kept
pyvips.concurrency_set(2)
configure_pool(2, slice_ms=int(sys.argv[1]))
work = lambda: pyvips.Image.black(3000, 3000).gaussblur(3).write_to_buffer(".png")
async def main():
    await asyncio.gather(run_blocking(work), run_blocking(work))
asyncio.run(main())
tids = sorted(os.listdir("/proc/self/task"), key=lambda t: t != str(os.getpid()))
def name(t):
    return open(f"/proc/self/task/{t}/comm").read().strip()
print(json.dumps([[name(t), *(read_attr(int(t))[i] for i in (1, 3, 5))] for t in tids]))
"""


def _run(slice_ms: int) -> list[list[object]]:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(slice_ms)],
        env=ENV, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    threads: list[list[object]] = json.loads(out)
    return threads


def test_the_pool_and_the_libvips_threads_it_starts_run_as_batch() -> None:
    main, *others = _run(40)
    assert main[1] == os.SCHED_OTHER  # the event loop's thread still preempts them
    vips = [t for t in others if t[0] == "libvips worker"]
    assert vips and len(others) > len(vips)  # the pool's threads besides
    assert {t[1] for t in others} == {os.SCHED_BATCH}, others
    assert {t[2] for t in [main, *others]} == {2}  # nice kept
    if SLICES_KEPT:
        assert {t[3] for t in others} == {40_000_000}


def test_zero_leaves_the_kernel_defaults() -> None:
    assert {t[1] for t in _run(0)} == {os.SCHED_OTHER}


def _worker_threads(redis_server: RedisServer, tmp_path: Path, **env: str) -> list[tuple[int, ...]]:
    """The threads of a real ``filmstrip worker`` once it consumes (its log says so)."""
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "filmstrip.services.cli.main", "worker"],
        env={
            **ENV,
            "FILMSTRIP_DATA_DIR": str(tmp_path),
            "FILMSTRIP_REDIS_URL": redis_server.url,
            "FILMSTRIP_DATABASE_URL": sqlite_url(str(tmp_path / "filmstrip.db")),
            "FILMSTRIP_WORKER_METRICS_PORT": "0",
            "FILMSTRIP_LOG_JSON": "false",
            **env,
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while "worker consuming" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # The main thread (the event loop) first.
        tids = sorted(os.listdir(f"/proc/{proc.pid}/task"), key=lambda t: t != str(proc.pid))
        attrs = [read_attr(int(t)) for t in tids]
        return [a for a in attrs if a is not None]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_worker_role_runs_its_pipeline_threads_as_batch(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    main, *others = _worker_threads(
        redis_server, tmp_path, FILMSTRIP_PIPELINE_THREADS="2", FILMSTRIP_WORKER_CPU_SLICE_MS="100"
    )
    assert main[1] == os.SCHED_OTHER
    batch = [a for a in others if a[1] == os.SCHED_BATCH]
    assert len(batch) == 2, others
    if SLICES_KEPT:
        assert {a[5] for a in batch} == {100_000_000}


def test_the_worker_role_keeps_the_kernel_s_defaults_unless_told(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    threads = _worker_threads(redis_server, tmp_path)
    assert {a[1] for a in threads} == {os.SCHED_OTHER}
