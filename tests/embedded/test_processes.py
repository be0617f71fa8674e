"""Stopping child processes: SIGTERM first, SIGKILL once the grace is over."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from filmstrip.embedded.processes import stop_process, wait_or_kill

# Ignores SIGTERM, says it is ready, then sleeps: only SIGKILL ends it.
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def _start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    proc = _start(STUBBORN)
    started = time.monotonic()
    stop_process(proc, 0.5)
    assert proc.returncode == -signal.SIGKILL
    assert 0.4 < time.monotonic() - started < 10


def test_a_polite_process_exits_on_sigterm() -> None:
    proc = _start("import time; print('ready', flush=True); time.sleep(60)")
    stop_process(proc, 10)
    assert proc.returncode == -signal.SIGTERM


def test_kill_skips_the_grace_and_a_finished_process_is_left_alone() -> None:
    proc = _start(STUBBORN)
    started = time.monotonic()
    stop_process(proc, 30, kill=True)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
    stop_process(proc, 30)  # already gone: nothing to do, no error
    assert wait_or_kill(proc, 1) == -signal.SIGKILL
