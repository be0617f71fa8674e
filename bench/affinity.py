"""CPU affinity for the soak: the system under test on some CPUs, what is not Filmstrip
(moto, the soak's own clients) on others, so the measured cores run only the system and
the bare pipeline it is compared with. Linux only, like ``bench/procstat``, whose
process-tree walk it shares.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection

from bench.procstat import children, threads


def split_cpus(aside: int) -> tuple[list[int], list[int]]:
    """The CPUs this process may use, as (measured, set aside): the last ``aside`` go to
    the load and the S3 endpoint. Raises ``ValueError`` unless both sides get one."""
    cpus = sorted(os.sched_getaffinity(0))
    if not 0 < aside < len(cpus):
        raise ValueError(
            f"cannot set {aside} of {len(cpus)} CPUs aside and keep one for the system"
        )
    return cpus[:-aside], cpus[-aside:]


def pin_tree(pid: int, cpus: Collection[int]) -> int:
    """Pin every thread of ``pid`` and of its live descendants to ``cpus``; how many
    threads were pinned. Threads and processes started later inherit the pinning."""
    pinned = 0
    for tid in threads(pid):
        # A thread may end between the listing and the call.
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)
            pinned += 1
    return pinned + sum(pin_tree(child, cpus) for child in children(pid))
