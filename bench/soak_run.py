"""One soak run, whatever runs the system: the clients upload their plans while chaos (if
any) strikes, the run waits for every completion event and an empty queue, measures the
CPU each process kind used, then verifies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.procstat import cpu_shares, cpu_times
from bench.role_process import Proc
from bench.soak_clients import ClientStats, Endpoints, report_progress, run_client
from bench.soak_photos import Plan
from bench.soak_verify import wait_drained

# chaos(stats, stop): strikes until ``stop`` is set, seeing what the clients saw so far.
Chaos = Callable[[list[ClientStats], asyncio.Event], Awaitable[None]]
Check = Callable[[list[ClientStats]], Awaitable[tuple[dict[str, Any], list[str]]]]
Interleave = tuple[Callable[[asyncio.Event], Awaitable[None]], Callable[[float, float], float]]


@dataclass
class RunResult:
    report: dict[str, Any]
    problems: list[str]
    cpu_used: dict[str, float]  # CPU seconds per process kind during the run
    loop_cpu: float  # of the workers' event-loop threads
    rate: float  # completed photos/s, first upload to last completion or empty queue
    elapsed: float
    shares: tuple[float, ...]  # (busy, idle, stolen) of the measured CPUs
    aside_shares: tuple[float, ...] | None = None  # the same of the aside CPUs, if any


async def run_load(
    *,
    tokens: list[str],
    plans: list[Plan],
    endpoints: Endpoints,
    redis_url: str,
    procs: Callable[[], list[Proc]],
    cpu_by_kind: Callable[[], dict[str, float]],
    check: Check,
    cpus: list[int] | None,
    fast: bool,
    chaos: Chaos | None = None,
    aside: list[int] | None = None,
    interleave: Interleave | None = None,
) -> RunResult:
    """The run. ``interleave`` (a clean run): ``(run, stopped_within)``; ``run(stop)`` goes
    on beside the load until the queue drains, and the rate leaves out the seconds
    ``stopped_within(start, end)`` says the system was stopped."""
    n = sum(len(plan) for plan in plans)
    clients = len(plans)
    stats = [ClientStats() for _ in range(clients)]
    all_done = asyncio.Event()
    uploads_done = [asyncio.Event() for _ in range(clients)]
    stop_chaos = asyncio.Event()

    chaos_task = asyncio.create_task(chaos(stats, stop_chaos)) if chaos else None
    stop_slices = asyncio.Event()
    slices = asyncio.create_task(interleave[0](stop_slices)) if interleave else None

    async def sampler() -> None:
        while not all_done.is_set():
            for proc in procs():
                proc.sample_rss()
            await asyncio.sleep(0.5)

    sampling = asyncio.create_task(sampler())
    reporting = asyncio.create_task(
        report_progress(stats, uploads_done, all_done, n, every_s=5.0 if fast else 15.0)
    )
    cpu_at_start = cpu_by_kind()
    loop_cpu_at_start = sum(p.loop_cpu_s() for p in procs() if p.role == "worker")
    ticks_at_start = cpu_times(cpus)
    aside_at_start = cpu_times(aside) if aside else None
    started = time.monotonic()
    runners = [
        asyncio.create_task(
            run_client(i, tokens[i], plans[i], endpoints, stats[i], uploads_done[i], all_done)
        )
        for i in range(clients)
    ]
    try:
        for ev in uploads_done:
            await ev.wait()
        # Wait for every completion event (resume covers the bus restart); chaos goes on
        # meanwhile, then verify.
        deadline = time.monotonic() + (30 if fast else 120) + n * 0.2
        while time.monotonic() < deadline:
            if all(p in s.completion for s in stats for p in s.accepted):
                break
            await asyncio.sleep(0.5)
        # Then for the follow-up jobs (optimization runs after "completed"): the photos'
        # work is done only when the queue is empty.
        drained_at = await wait_drained(redis_url, limit_s=max(5.0, deadline - time.monotonic()))
        stop_slices.set()
        if slices is not None:
            await slices
        shares = cpu_shares(ticks_at_start, cpu_times(cpus))
        aside_shares = cpu_shares(aside_at_start, cpu_times(aside)) if aside_at_start else None
        stop_chaos.set()
        if chaos_task:
            await chaos_task
        elapsed = time.monotonic() - started
        cpu_used = {k: v - cpu_at_start.get(k, 0.0) for k, v in cpu_by_kind().items()}
        loop_cpu = sum(p.loop_cpu_s() for p in procs() if p.role == "worker") - loop_cpu_at_start
        report, problems = await check(stats)
        all_done.set()
        await asyncio.gather(*runners, sampling, reporting)
    finally:
        all_done.set()
        stop_chaos.set()
        stop_slices.set()
        for task in [*runners, sampling, reporting, *([chaos_task] if chaos_task else [])]:
            task.cancel()
        if slices is not None and not slices.done():
            slices.cancel()
    span = report.pop("_e2e_span")
    end = max(span[1], drained_at)
    stopped = interleave[1](span[0], end) if interleave else 0.0
    rate = report["completed"] / max(1e-9, end - span[0] - stopped)
    return RunResult(report, problems, cpu_used, loop_cpu, rate, elapsed, shares, aside_shares)
