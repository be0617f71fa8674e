"""The bare pipeline: the stages called in a loop on a sample of photos, no HTTP, Redis,
blob store or events. The soak divides its end-to-end rate by this one.

It runs in two layouts on the same cores: threads in one process, and the workers' own
layout (so many processes, so many threads each). Threads of one process share a GIL,
processes do not; the faster layout is the one the system is held to.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

BARE_SAMPLE = 200  # photos per measurement: about 13 s of this machine's two cores
WARMUP = 20  # photos run untimed first: libvips loads its loaders and savers on first use


def bare_sample(sources: list[bytes], uses: list[int], size: int) -> list[bytes]:
    """At most ``size`` photos with the run's mix: each source as often, in proportion, as
    it was uploaded (largest remainders), so the bare rate is of the same work. The
    sources' costs differ 100-fold; a plain slice of the run would not be."""
    total = sum(uses)
    if total <= size:
        return [src for src, k in zip(sources, uses, strict=True) for _ in range(k)]
    quotas = [k * size / total for k in uses]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(uses)), key=lambda i: quotas[i] - counts[i], reverse=True)
    for i in by_remainder[: size - sum(counts)]:
        counts[i] += 1
    sample = [src for src, k in zip(sources, counts, strict=True) for _ in range(k)]
    random.Random(2).shuffle(sample)  # no run of one large photo at the end
    return sample


@dataclass(frozen=True)
class Layout:
    processes: int
    threads: int

    def __str__(self) -> str:
        return f"{self.processes} process{'es' if self.processes > 1 else ''} x {self.threads}"


def stage_runner() -> Callable[[bytes], None]:
    """A function that runs full_processing's stages on one photo (libvips configured as
    the worker configures it); imported here, in the process that runs it."""
    from filmstrip.pipeline import resolve_stages
    from filmstrip.pipeline.context import StageContext
    from filmstrip.pipeline.registry import get_stage
    from filmstrip.pipeline.vips import configure_vips
    from filmstrip.settings import load_settings

    options = load_settings({}).pipeline
    configure_vips(options)
    stages = [get_stage(s) for s in resolve_stages("full_processing", None)]

    def one(data: bytes) -> None:
        ctx = StageContext(data, options)
        for stage in stages:
            stage.run(ctx)

    return one


def _loop(
    photos: list[bytes],
    threads: int,
    ready: Callable[[], None] | None = None,
    go: Event | None = None,
) -> tuple[float, float]:
    """Run the stages on ``photos`` on ``threads`` threads: (seconds, CPU seconds)."""
    one = stage_runner()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, photos[:WARMUP]))
        if ready is not None and go is not None:
            ready()
            go.wait()  # every process starts its timed part together
        started, cpu = time.perf_counter(), time.process_time()
        list(pool.map(one, photos))
        return time.perf_counter() - started, time.process_time() - cpu


def _child(
    photos: list[bytes],
    threads: int,
    cpus: list[int] | None,
    slice_ms: int,
    go: Event,
    out: Queue[Any],
) -> None:
    # Before any thread starts: the pool's and libvips' threads inherit both.
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    if slice_ms:
        from filmstrip.cpu_slices import run_as_batch

        assert run_as_batch(slice_ms), "the kernel refused batch scheduling"
    out.put(_loop(photos, threads, lambda: out.put("ready"), go))


def bare_rate(
    photos: list[bytes], layout: Layout, *, cpus: list[int] | None = None, slice_ms: int = 0
) -> tuple[float, float]:
    """Photos/s of the bare pipeline in ``layout`` and its CPU seconds per photo. With
    several processes each takes its share; the rate is over the slowest one. With
    ``cpus`` every process runs on those CPUs only; with ``slice_ms`` as batch work in
    slices that long, as the worker's pool (filmstrip.cpu_slices)."""
    if layout.processes == 1 and cpus is None and not slice_ms:
        seconds, cpu = _loop(photos, layout.threads)
        return len(photos) / seconds, cpu / len(photos)
    # spawn: a forked child would inherit this process's libvips threads mid-state.
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    children = [
        ctx.Process(
            target=_child,
            args=(photos[i :: layout.processes], layout.threads, cpus, slice_ms, go, out),
        )
        for i in range(layout.processes)
    ]
    for child in children:
        child.start()
    try:
        # Each child warms up, says so, and waits: the timed parts start together.
        for _ in children:
            assert out.get(timeout=300) == "ready"
        go.set()
        results = [out.get(timeout=600) for _ in children]
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
    seconds = max(r[0] for r in results)
    return len(photos) / seconds, sum(r[1] for r in results) / len(photos)
