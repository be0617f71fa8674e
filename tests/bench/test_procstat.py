"""The soak's reading of how busy the CPUs were."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

from bench.procstat import cpu_shares, cpu_times

# Spins on one CPU for the given seconds, then exits.
_SPIN = (
    "import os, sys, time; os.sched_setaffinity(0, {int(sys.argv[1])});"
    " end = time.monotonic() + float(sys.argv[2])\nwhile time.monotonic() < end: pass"
)


def test_a_pinned_spin_reads_busy_on_its_cpu_and_every_tick_is_counted() -> None:
    cpu = max(os.sched_getaffinity(0))
    hz = os.sysconf("SC_CLK_TCK")
    used_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, started = cpu_times([cpu]), time.monotonic()
    subprocess.run([sys.executable, "-c", _SPIN, str(cpu), "1.0"], check=True)
    after, elapsed = cpu_times([cpu]), time.monotonic() - started
    used_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spin = sum(_cpu(used_after)) - sum(_cpu(used_before))
    busy, idle, stolen = (a - b for a, b in zip(after, before, strict=True))
    # Whatever else runs on that CPU (the suite's other process) only adds busy ticks,
    # so this holds on a loaded machine too. The spin's CPU time was spent there, all but
    # the interpreter's start-up, which runs wherever the kernel puts it. It spins for
    # 1 s of wall time: even sharing its CPU it gets a good part of that.
    assert spin > 0.2
    assert busy >= (spin - 0.3) * hz
    # Busy, idle and stolen together are the whole stretch: no column left out.
    assert busy + idle + stolen == pytest.approx(elapsed * hz, rel=0.1, abs=5)
    assert sum(cpu_shares(before, after)) == pytest.approx(1.0)


def _cpu(usage: resource.struct_rusage) -> tuple[float, float]:
    return usage.ru_utime, usage.ru_stime


def test_all_cpus_are_the_sum_of_each() -> None:
    cpus = list(range(os.cpu_count() or 1))
    whole, parts = cpu_times(), [cpu_times([c]) for c in cpus]
    summed = tuple(sum(p[i] for p in parts) for i in range(3))
    # Read a moment apart: allow a few ticks per CPU between the two readings.
    for w, s in zip(whole, summed, strict=True):
        assert abs(w - s) <= 5 * len(cpus)
    assert sum(whole) > 0
