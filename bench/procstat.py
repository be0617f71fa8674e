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


def tree_cpu_seconds(pid: int) -> float | None:
    """:func:`cpu_seconds` of ``pid`` and every live descendant (a server whose parent
    only supervises the child that serves, say)."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    return own + sum(tree_cpu_seconds(c) or 0.0 for c in children)


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
