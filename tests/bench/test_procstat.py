"""The soak's reading of how busy the CPUs were."""

from __future__ import annotations

import os
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


def test_a_cpu_kept_busy_reads_busy_and_an_idle_stretch_reads_idle() -> None:
    cpu = max(os.sched_getaffinity(0))
    before = cpu_times([cpu])
    subprocess.run([sys.executable, "-c", _SPIN, str(cpu), "1.0"], check=True)
    busy, idle, stolen = cpu_shares(before, cpu_times([cpu]))
    # The interpreter's start-up runs wherever the kernel puts it; the spin is pinned.
    assert busy > 0.6
    assert busy + idle + stolen == pytest.approx(1.0)

    before = cpu_times([cpu])
    time.sleep(0.5)
    busy_idle = cpu_shares(before, cpu_times([cpu]))
    # The rest of this machine may use that CPU meanwhile, but not all of it.
    assert busy_idle[0] < busy


def test_all_cpus_are_the_sum_of_each() -> None:
    cpus = list(range(os.cpu_count() or 1))
    whole, parts = cpu_times(), [cpu_times([c]) for c in cpus]
    summed = tuple(sum(p[i] for p in parts) for i in range(3))
    # Read a moment apart: allow a few ticks per CPU between the two readings.
    for w, s in zip(whole, summed, strict=True):
        assert abs(w - s) <= 5 * len(cpus)
    assert sum(whole) > 0
