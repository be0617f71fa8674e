"""The bare pipeline measured in slices during the run, on the same CPUs at the same time.

This machine's speed drifts by about 10 % over minutes: one process running the same 200
photos four times back to back, nothing else running, took 120, 120, 125 and 135 ms a
photo. A bare rate taken before and after a run of several minutes therefore says as much
about the drift as about the system. Here the system's processes on the measured CPUs are
stopped (SIGSTOP) for a few seconds every so often while the bare pipeline, started and
warmed up once, runs a slice of its photos there; then they go on (SIGCONT). Both see the
same machine, minute by minute, and the system's rate leaves the stopped time out.

Each photo's CPU time is taken on its own, so the anchor is the sample's mean over every
photo measured (a slice ends mid-sample; the photos' costs differ 100-fold). Only for
layouts of one thread per process, where a process's CPU time is that photo's.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import time
from collections.abc import Iterable
from multiprocessing.queues import Queue
from typing import Any

from bench.bare_pipeline import WARMUP, Layout, stage_runner
from bench.procstat import children

SLICE_S = 3.0  # each slice of bare pipeline
EVERY_S = 6.0  # system time between two slices


def _serve(
    photos: list[tuple[int, bytes]], cpus: list[int] | None, commands: Queue[Any], out: Queue[Any]
) -> None:
    """A bare pipeline process: warm up, then run ``seconds``-long slices on command."""
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    one = stage_runner()
    for _, data in photos[:WARMUP]:
        one(data)
    out.put("ready")
    at = 0
    while (seconds := commands.get()) is not None:
        costs = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            index, data = photos[at % len(photos)]
            at += 1
            cpu = time.process_time()
            one(data)
            costs.append((index, time.process_time() - cpu))
        out.put(costs)


class SlicedBare:
    """The bare pipeline in each of ``layouts`` (one thread per process), its processes on
    ``cpus``, run in slices between stops of the system's processes."""

    def __init__(self, photos: list[bytes], layouts: list[Layout], cpus: list[int] | None):
        self.photos = photos
        self.layouts = [layout for layout in layouts if layout.threads == 1]
        self.cpus = cpus
        self.costs: dict[Layout, dict[int, list[float]]] = {lt: {} for lt in self.layouts}
        self.stopped_s: list[tuple[float, float]] = []  # (from, to), monotonic
        self._procs: dict[Layout, list[tuple[Any, Queue[Any], Queue[Any]]]] = {}

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        indexed = list(enumerate(self.photos))
        for layout in self.layouts:
            procs = []
            for i in range(layout.processes):
                commands: Queue[Any] = ctx.Queue()
                out: Queue[Any] = ctx.Queue()
                share = indexed[i :: layout.processes]
                proc = ctx.Process(target=_serve, args=(share, self.cpus, commands, out))
                proc.start()
                procs.append((proc, commands, out))
            self._procs[layout] = procs
        for procs in self._procs.values():
            for _, _, out in procs:
                assert out.get(timeout=300) == "ready"

    def close(self) -> None:
        for procs in self._procs.values():
            for proc, commands, _ in procs:
                with contextlib.suppress(Exception):
                    commands.put(None)
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.kill()

    def _slice(self, layout: Layout, seconds: float) -> None:
        procs = self._procs[layout]
        for _, commands, _ in procs:
            commands.put(seconds)
        for _, _, out in procs:
            for index, cpu in out.get(timeout=300):
                self.costs[layout].setdefault(index, []).append(cpu)

    async def run(self, pids: Iterable[int], stop: asyncio.Event) -> None:
        """Until ``stop``: every ``EVERY_S`` stop ``pids`` (and their children), run a slice of
        the next layout, start them again."""
        turn = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EVERY_S)
            if stop.is_set() or not self.layouts:
                break
            layout = self.layouts[turn % len(self.layouts)]
            turn += 1
            stopped = _tree(pids)
            began = time.monotonic()
            _signal(stopped, signal.SIGSTOP)
            try:
                await asyncio.to_thread(self._slice, layout, SLICE_S)
            finally:
                _signal(stopped, signal.SIGCONT)
                self.stopped_s.append((began, time.monotonic()))

    def stopped_within(self, start: float, end: float) -> float:
        """Seconds the system was stopped between ``start`` and ``end`` (monotonic)."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.stopped_s)

    def cpu_per_photo(self, layout: Layout) -> tuple[float, float]:
        """The sample's mean CPU seconds a photo in ``layout`` (each photo's own mean over
        its measurements), and the share of the sample measured."""
        measured = self.costs[layout]
        if not measured:
            return float("nan"), 0.0
        mean = statistics.fmean(statistics.fmean(v) for v in measured.values())
        return mean, len(measured) / len(self.photos)


def _tree(pids: Iterable[int]) -> list[int]:
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children(pid)
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
