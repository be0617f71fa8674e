"""Two workers' pipelines sharing one core: CPU per photo with the kernel's default time
slices against the worker's batch slices (filmstrip/cpu_slices.py), beside one pipeline
alone on that core (the floor: nothing to switch with).

    python -m bench.cpu_slices [--rounds 3] [--cpu 1] [--slice-ms 100]

Each process runs the bare pipeline's stages over the soaks' photo mix; the three layouts
alternate round by round, so the ratios hold on a machine whose speed drifts. Linux only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

from bench.bare_pipeline import WARMUP, stage_runner
from bench.soak_photos import corpus_sources


def _child(cpu: int, slice_ms: int, photos: list[bytes], go: Event, out: Queue[Any]) -> None:
    os.sched_setaffinity(0, [cpu])
    if slice_ms:
        from filmstrip.cpu_slices import run_as_batch

        # Before libvips starts its threads: they inherit it, as from the worker's pool.
        assert run_as_batch(slice_ms), "the kernel refused batch scheduling"
    one = stage_runner()
    for data in photos[:WARMUP]:
        one(data)
    out.put("ready")
    go.wait()
    cpu_before = time.process_time()
    for data in photos:
        one(data)
    out.put((time.process_time() - cpu_before) / len(photos))


def cpu_per_photo(processes: int, cpu: int, slice_ms: int, photos: list[bytes]) -> float:
    """CPU ms per photo, averaged over ``processes`` running the stages together on ``cpu``."""
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    children = [
        ctx.Process(target=_child, args=(cpu, slice_ms, photos, go, out)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            assert out.get(timeout=300) == "ready"
        go.set()
        results = [out.get(timeout=900) for _ in children]
    finally:
        for child in children:
            child.join(timeout=60)
    return 1000 * statistics.fmean(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--slice-ms", type=int, default=100)
    args = parser.parse_args()
    good, _ = corpus_sources()
    photos = good * 2
    layouts = {
        "one pipeline alone": (1, 0),
        "two, the kernel's default slices": (2, 0),
        f"two, batch in {args.slice_ms} ms slices": (2, args.slice_ms),
    }
    figures: dict[str, list[float]] = {name: [] for name in layouts}
    for round_ in range(1, args.rounds + 1):
        for name, (processes, slice_ms) in layouts.items():
            figures[name].append(cpu_per_photo(processes, args.cpu, slice_ms, photos))
        print(f"round {round_}: " + ", ".join(f"{v[-1]:.1f}" for v in figures.values()))
    alone, default, batch = (statistics.median(v) for v in figures.values())
    print(f"\nCPU ms per photo on CPU {args.cpu} ({len(photos)} photos a process, medians):")
    for name, values in figures.items():
        print(f"  {name:40s} {statistics.median(values):6.1f}")
    print(f"  batch / default slices                   {batch / default:6.2f}x")
    print(f"  batch / alone                            {batch / alone:6.2f}x")


if __name__ == "__main__":
    main()
