"""Two workers' pipelines sharing one core: CPU per photo with the kernel's default time
slices against the worker's batch slices (filmstrip/cpu_slices.py), beside one pipeline
alone on that core (the floor: nothing to switch with).

    python -m bench.cpu_slices [--rounds 3] [--cpu 1] [--slice-ms 100]

Each process runs the bare pipeline's stages over the soaks' photo mix; the three layouts
alternate round by round, so the ratios hold on a machine whose speed drifts. Linux only.
"""

from __future__ import annotations

import argparse
import os
import statistics

from bench.bare_pipeline import Layout, bare_rate
from bench.soak_photos import corpus_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--slice-ms", type=int, default=100)
    args = parser.parse_args()
    good, _ = corpus_sources()
    photos = good * 2  # each process's share
    layouts = {
        "one pipeline alone": (1, 0),
        "two, the kernel's default slices": (2, 0),
        f"two, batch in {args.slice_ms} ms slices": (2, args.slice_ms),
    }
    figures: dict[str, list[float]] = {name: [] for name in layouts}
    for round_ in range(1, args.rounds + 1):
        for name, (processes, slice_ms) in layouts.items():
            _rate, cpu = bare_rate(
                photos * processes, Layout(processes, 1), cpus=[args.cpu], slice_ms=slice_ms
            )
            figures[name].append(1000 * cpu)
        print(f"round {round_}: " + ", ".join(f"{v[-1]:.1f}" for v in figures.values()))
    alone, default, batch = (statistics.median(v) for v in figures.values())
    print(f"\nCPU ms per photo on CPU {args.cpu} ({len(photos)} photos a process, medians):")
    for name, values in figures.items():
        print(f"  {name:40s} {statistics.median(values):6.1f}")
    print(f"  batch / default slices                   {batch / default:6.2f}x")
    print(f"  batch / alone                            {batch / alone:6.2f}x")


if __name__ == "__main__":
    main()
