"""A bench run as a program measures this checkout's filmstrip or refuses to run
(bench/__init__.py); imported as a library it does not check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_bench(pythonpath: str, *, anyway: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BENCH_ANY_FILMSTRIP"}
    env["PYTHONPATH"] = pythonpath
    if anyway:
        env["BENCH_ANY_FILMSTRIP"] = "1"
    argv = [sys.executable, "-m", "bench.stats"]  # a bench module that only defines
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_bench_refuses_a_filmstrip_that_is_not_the_checkout_s(tmp_path: Path) -> None:
    stale = tmp_path / "filmstrip"
    stale.mkdir()
    (stale / "__init__.py").write_text("")  # as an older installed release would be
    refused = _run_bench(f"{tmp_path}{os.pathsep}{ROOT}")
    assert refused.returncode == 1
    assert f"not this checkout's {ROOT / 'src' / 'filmstrip'}" in refused.stderr
    assert "PYTHONPATH=src:." in refused.stderr
    anyway = _run_bench(f"{tmp_path}{os.pathsep}{ROOT}", anyway=True)
    assert anyway.returncode == 0, anyway.stderr


def test_a_bench_runs_on_the_checkout_s_filmstrip() -> None:
    ran = _run_bench(f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    assert ran.returncode == 0, ran.stderr


def test_imported_as_a_library_bench_does_not_check(tmp_path: Path) -> None:
    stale = tmp_path / "filmstrip"
    stale.mkdir()
    (stale / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    argv = [sys.executable, "-c", "import bench.stats"]  # as moto's server imports its app
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
