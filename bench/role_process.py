"""One role slot of a soak (an api, a worker, a bus): the process its supervisor runs for it
across restarts, with the CPU and peak memory it used, wherever it was started."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from bench.procstat import cpu_seconds, rss_kb
from filmstrip.embedded.supervisor import Supervisor


@dataclass
class Proc:
    role: str  # api, worker or bus
    name: str  # the supervisor's name of this slot
    supervisor: Supervisor
    peak_rss_kb: int = 0
    cpu_s_before: float = 0.0  # CPU of earlier incarnations (a killed worker's)
    loop_cpu_s_before: float = 0.0  # the same, of the main (event-loop) thread alone

    @property
    def popen(self) -> subprocess.Popen[bytes] | None:
        """The slot's process while it runs."""
        proc = self.supervisor.process(self.name)
        return proc if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        self.supervisor.start(self.name)

    def running(self) -> bool:
        return self.popen is not None

    def sample_rss(self) -> None:
        if self.popen is not None:
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
        if self.popen is not None:
            self.sample_rss()
            self.cpu_s_before += cpu_seconds(self.popen.pid) or 0.0
            self.loop_cpu_s_before += cpu_seconds(self.popen.pid, tid=self.popen.pid) or 0.0

    def kill(self) -> None:
        self.bank()
        self.supervisor.kill(self.name)

    def stop(self, timeout: float = 30) -> None:
        self.bank()
        self.supervisor.stop(self.name, timeout=timeout)
