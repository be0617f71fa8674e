"""Child processes: their environment, and stopping them politely first, by force once
their time is up."""

from __future__ import annotations

import os
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


def env_without_filmstrip() -> dict[str, str]:
    """This process's environment minus Filmstrip's settings (``FILMSTRIP_*`` and the PaaS
    names it honours): for a child given settings of its own."""
    paas = ("PORT", "DATABASE_URL", "REDIS_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith("FILMSTRIP_") and k not in paas}
