"""One role slot of a soak (an api, a worker, a bus): its process across restarts, with the
CPU and peak memory it used, wherever it was started."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.procstat import cpu_seconds, rss_kb
from filmstrip.embedded.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]

# Starts argv with env, stderr into log: a local process by default; the multi-host soak
# starts it on a host.
Spawn = Callable[[list[str], dict[str, str], Path], "subprocess.Popen[bytes]"]


def spawn_here(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True,
        )  # fmt: skip


@dataclass
class Proc:
    role: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    spawn: Spawn = spawn_here
    popen: subprocess.Popen[bytes] | None = None
    peak_rss_kb: int = 0
    cpu_s_before: float = 0.0  # CPU of earlier incarnations (a killed worker's)
    loop_cpu_s_before: float = 0.0  # the same, of the main (event-loop) thread alone

    def start(self) -> None:
        self.popen = self.spawn(self.argv, self.env, self.log)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def sample_rss(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.peak_rss_kb = max(self.peak_rss_kb, rss_kb(self.popen.pid)[1])

    def cpu_s(self) -> float:
        """CPU seconds used by this role slot, across restarts."""
        return self.cpu_s_before + ((cpu_seconds(self.popen.pid) or 0.0) if self.popen else 0.0)

    def loop_cpu_s(self) -> float:
        """CPU seconds of the main thread, which runs the event loop, across restarts."""
        pid = self.popen.pid if self.popen else None
        return self.loop_cpu_s_before + ((cpu_seconds(pid, tid=pid) or 0.0) if pid else 0.0)

    def bank(self) -> None:
        """Count what the running process used so far as an earlier incarnation's: it is
        about to die (by :meth:`kill`, or with its host)."""
        if self.popen and self.popen.poll() is None:
            self.sample_rss()
            self.cpu_s_before += cpu_seconds(self.popen.pid) or 0.0
            self.loop_cpu_s_before += cpu_seconds(self.popen.pid, tid=self.popen.pid) or 0.0

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.bank()
            self.popen.kill()
            self.popen.wait()
        self.popen = None

    def stop(self, timeout: float = 30) -> None:
        if self.popen and self.popen.poll() is None:
            self.bank()
            stop_process(self.popen, timeout)
