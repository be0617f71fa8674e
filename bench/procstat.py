"""What /proc says about a process the benches started: CPU time and resident set."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def cpu_seconds(pid: int, *, tid: int | None = None) -> float | None:
    """User + system CPU seconds ``pid`` has used (or only its thread ``tid``; the main
    thread's id is the pid), or ``None`` once it is gone."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> list[int]:
    """The thread ids of ``pid`` (its main thread's id is the pid); empty once it is gone."""
    try:
        return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``, whichever of its threads started them."""
    found: list[int] = []
    for tid in threads(pid):
        with contextlib.suppress(OSError):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """:func:`cpu_seconds` of ``pid`` and every live descendant (a server whose parent
    only supervises the child that serves, say)."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(tree_cpu_seconds(c) or 0.0 for c in children(pid))


def rss_kb(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of ``pid`` in KiB; zeros once it is gone."""
    cur = peak = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return cur, peak


def cpu_times(cpus: list[int] | None = None) -> tuple[int, int, int]:
    """(busy, idle, stolen) clock ticks so far, summed over ``cpus`` (default: all).
    Stolen ticks are those the hypervisor gave another guest while this one had work."""
    wanted = None if cpus is None else {f"cpu{c}" for c in cpus}
    busy = idle = stolen = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name != "cpu" if wanted is None else name not in wanted:
            continue
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        user, nice, system, idle_, iowait, irq, softirq, steal = map(int, values[:8])
        busy += user + nice + system + irq + softirq
        idle += idle_ + iowait
        stolen += steal
    return busy, idle, stolen


def cpu_shares(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[float, ...]:
    """The (busy, idle, stolen) fractions of the time between two :func:`cpu_times`."""
    deltas = [a - b for a, b in zip(after, before, strict=True)]
    total = sum(deltas) or 1
    return tuple(d / total for d in deltas)
