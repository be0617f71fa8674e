"""Job statistics over time windows, from the per-minute and per-hour counters the Lua keeps."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

#: (name, number of hour buckets); the 1 h window uses minute buckets instead.
WINDOWS = (("24h", 24), ("7d", 168))


class WindowStats(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs finished (completed or dead-lettered) within one window."""

    total: int
    completed: int
    failed: int
    success_rate: float  # completed / total, 1.0 when nothing finished
    avg_processing_ms: float
    throughput_per_min: float


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    last_1h: WindowStats
    last_24h: WindowStats
    last_7d: WindowStats


def window_stats(buckets: Sequence[tuple[int, ...]], seconds: int) -> WindowStats:
    """Sum ``(completed, failed, processing_ms)`` buckets into one window's figures."""
    completed = sum(b[0] for b in buckets)
    failed = sum(b[1] for b in buckets)
    took = sum(b[2] for b in buckets)
    total = completed + failed
    return WindowStats(
        total=total,
        completed=completed,
        failed=failed,
        success_rate=completed / total if total else 1.0,
        avg_processing_ms=took / total if total else 0.0,
        throughput_per_min=total * 60 / seconds,
    )
