"""Stopping child processes: politely first, by force once their time is up."""

from __future__ import annotations

import subprocess
from typing import Any


def wait_or_kill(proc: subprocess.Popen[Any], timeout: float) -> int:
    """Wait up to ``timeout`` seconds for ``proc`` to exit, then SIGKILL it; its exit code."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def stop_process(proc: subprocess.Popen[Any], timeout: float, *, kill: bool = False) -> None:
    """SIGTERM ``proc`` (SIGKILL with ``kill``) if it still runs, then :func:`wait_or_kill`."""
    if proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    wait_or_kill(proc, timeout)
