"""Ask Linux to run a CPU-bound thread as batch work, in long time slices.

Two workers sharing a core otherwise take turns every ~1.4 ms (EEVDF's base slice), and
each turn refills the caches the other one's encode evicted: ~5 % more CPU per photo
(bench/README.md, ``cpu_slices``). As SCHED_BATCH with a long slice (the ``sched_attr``
runtime, honoured for normal tasks since Linux 6.12; older kernels keep their own) each
runs up to that long, while a thread that waits on the network (an event loop: default
slice, not batch) still preempts it when it wakes, if the kernel finds it due. Threads a
batch thread starts inherit it: libvips starts its workers from the thread that first
needs them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import struct

log = logging.getLogger("filmstrip.cpu_slices")

# sched_setattr / sched_getattr: Python's os module has neither.
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}
# struct sched_attr (SCHED_ATTR_SIZE_VER1): size, policy, flags, nice, priority, runtime,
# deadline, period, util_min, util_max.
_ATTR = struct.Struct("IIQiIQQQII")
LONGEST_MS = 100  # the kernel clamps a slice to 0.1-100 ms


def _syscalls() -> tuple[int, int] | None:
    return _SYSCALLS.get(platform.machine()) if hasattr(os, "SCHED_BATCH") else None


def run_as_batch(slice_ms: int) -> bool:
    """Make the calling thread SCHED_BATCH with ``slice_ms`` slices, keeping its nice;
    False where refused or ``slice_ms`` is 0 (nothing changes then)."""
    calls = _syscalls()
    if calls is None or slice_ms <= 0:
        return False
    now = read_attr(0)
    raw = _ATTR.pack(
        _ATTR.size, os.SCHED_BATCH, 0, now[3] if now else 0, 0,
        min(slice_ms, LONGEST_MS) * 1_000_000, 0, 0, 0, 0,
    )  # fmt: skip
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(calls[0], 0, ctypes.create_string_buffer(raw), 0) != 0:
        log.info("the kernel refused batch scheduling: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


def read_attr(tid: int) -> tuple[int, ...] | None:
    """Thread ``tid``'s ``sched_attr`` fields (policy at [1], nice at [3], slice ns at [5];
    0: the calling thread); None where unknown."""
    calls = _syscalls()
    if calls is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(_ATTR.size)
    if libc.syscall(calls[1], tid, buf, _ATTR.size, 0) != 0:
        return None
    return _ATTR.unpack(buf.raw)
