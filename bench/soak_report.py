"""The soaks' table: the run's figures beside the counts, the clean run's comparison with
the bare pipeline on the same CPUs, and where the CPU went per process kind."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from bench.bare_pipeline import Layout, bare_rate
from bench.role_process import Proc


def run_figures(
    report: dict[str, Any],
    procs: list[Proc],
    cpu_used: dict[str, float],
    rate: float,
    elapsed: float,
    shares: tuple[float, ...],
) -> None:
    """Peak memory per role, CPU per process kind, photos/s, wall time, core use."""
    peak: dict[str, int] = {}
    for proc in procs:
        proc.sample_rss()
        peak[proc.role] = max(peak.get(proc.role, 0), proc.peak_rss_kb)
    report["peak RSS (api / worker / bus)"] = " / ".join(
        f"{peak.get(r, 0) / 1024:.0f} MB" for r in ("api", "worker", "bus")
    )
    report["CPU seconds by process (run)"] = ", ".join(
        f"{k} {v:.0f}" for k, v in sorted(cpu_used.items(), key=lambda kv: -kv[1])
    )
    report["end-to-end photos/s"] = f"{rate:.1f}"
    report["wall time"] = f"{elapsed:.1f} s"
    # A ratio is only as good as the cores it ran on: idle cores mean the system did not
    # keep them fed; stolen time means the hypervisor took them away for a while.
    busy, idle, stolen = shares
    report["cores busy / idle / stolen during the run"] = f"{busy:.0%} / {idle:.0%} / {stolen:.0%}"


async def bare_figures(
    report: dict[str, Any],
    *,
    layouts: list[Layout],
    sample: list[bytes],
    cpus: list[int] | None,
    before: dict[Layout, tuple[float, float]],
    rate: float,
    cpu_used: dict[str, float],
    own: Collection[str],
    loop_cpu: float,
    cores: int,
) -> None:
    """Run the bare pipeline again (after the system) and put the comparison in the
    table: the faster layout's mean rate, the ratio, and the CPU per photo of the
    processes in ``own`` (the system's) beyond the stages, beside the budget at 0.85."""
    # Each layout runs before the system and again after it (this machine's speed drifts
    # by several percent over a run); the faster layout's mean is the bare rate the
    # system is held to.
    means: dict[Layout, tuple[float, float]] = {}
    afters: dict[Layout, float] = {}
    for layout in layouts:
        after = await asyncio.to_thread(bare_rate, sample, layout, cpus=cpus)
        afters[layout] = after[0]
        means[layout] = ((before[layout][0] + after[0]) / 2, (before[layout][1] + after[1]) / 2)
    best = max(layouts, key=lambda layout: means[layout][0])
    bare, bare_cpu = means[best]
    others = "".join(f"; {layout}: {means[layout][0]:.1f}" for layout in layouts if layout != best)
    report["bare pipeline photos/s (same photo mix, faster layout)"] = (
        f"{bare:.1f} ({best} threads; before {before[best][0]:.1f},"
        f" after {afters[best]:.1f}{others})"
    )
    report["ratio end-to-end / bare (target >= 0.85)"] = f"{rate / bare:.2f}"
    # The same comparison in CPU, counting only the system's own processes: the clients
    # and an S3 server share the cores in some runs but are not Filmstrip.
    done = max(1, report["completed"])
    per_photo = sum(v for k, v in cpu_used.items() if k in own) / done
    report[f"CPU ms per photo: bare / {'+'.join(own)}"] = (
        f"{bare_cpu * 1000:.0f} / {per_photo * 1000:.0f} (ratio {bare_cpu / per_photo:.2f})"
    )
    # Where the run's CPU went beyond the stages themselves, per photo, beside what a run
    # at 0.85 of the bare rate could spend with every core busy all the time. The worker's
    # event loop (blob client, Redis, catalog, events, logs) runs on its main thread; its
    # other threads run the stages.
    budget = cores * 1000 / (0.85 * bare) - bare_cpu * 1000
    beyond = {k: v / done * 1000 for k, v in cpu_used.items()}
    beyond["worker"] -= bare_cpu * 1000
    report["CPU ms per photo beyond the bare stages"] = ", ".join(
        f"{k} {v:.1f}" for k, v in sorted(beyond.items(), key=lambda kv: -kv[1])
    ) + (
        f" (worker event loop {loop_cpu / done * 1000:.1f});"
        f" budget at 0.85 on {cores} cores: {budget:.1f}"
    )


def print_table(
    title: str, notes: list[str], chaos_log: list[str], report: dict[str, Any], problems: list[str]
) -> int:
    """Print the table; the exit code (1 when a guarantee is broken)."""
    print(f"\n{title}")
    for line in notes:
        print(f"  {line}")
    for line in chaos_log:
        print(f"  chaos {line}")
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"  {key:<{width}}  {value}")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    print("  RESULT: " + ("ok" if not problems else "GUARANTEE BROKEN"))
    return 0 if not problems else 1
