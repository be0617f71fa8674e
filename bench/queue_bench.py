"""Throughput of our queue vs BullMQ 5 on the same private redis-server.

Runs no-op jobs through ``filmstrip.queue`` (one Python process, uvloop) and through BullMQ
(one Node process, installed by this script into a temp folder from the npm registry), and
prints jobs/s for enqueue (ours: ``add`` from 50 tasks at once, as uploads add jobs;
BullMQ: ``addBulk``) and for processing at concurrency 1, 10 and 50, the ratio ours/BullMQ,
and Redis memory per 100,000 waiting jobs. With ``--cluster`` ours also runs on a private
3-node Redis Cluster (its keys are on one slot, so one node serves the queue; scripts go
through redis-py's cluster client), with the ratio cluster/single.

    python -m bench.queue_bench [--jobs 20000] [--skip-bullmq] [--cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio.cluster import RedisCluster as RedisClusterClient

from bench.redis_cluster import RedisCluster
from bench.redis_server import RedisServer
from filmstrip.queue import Consumer, Job, JobQueue, QueueOptions
from filmstrip.redis_client import RedisClient, open_redis
from filmstrip.settings import load_settings

CONCURRENCIES = (1, 10, 50)
PAYLOAD = json.dumps({"photo_id": "0" * 26, "storage": {"key": "originals/x.jpg"}}).encode()
MEMORY_JOBS = 100_000
# Our consumers can take jobs beyond their concurrency to batch round trips (off by default).
PREFETCH = 32

BULLMQ_SCRIPT = Path(__file__).with_name("bullmq_bench.js")


async def _used_memory(redis: RedisClient) -> int:
    if isinstance(redis, RedisClusterClient):
        per_node = await redis.info("memory", target_nodes=RedisClusterClient.PRIMARIES)
        return sum(int(info["used_memory"]) for info in per_node.values())
    info = await redis.info("memory")
    return int(info["used_memory"])


class _NoOp:
    def __init__(self, n: int) -> None:
        self.n = n
        self.done = 0
        self.finished = asyncio.Event()

    async def __call__(self, job: Job) -> None:
        self.done += 1
        if self.done == self.n:
            self.finished.set()


async def _fill(queue: JobQueue, n: int, tasks: int = 50) -> None:
    """Add ``n`` jobs from ``tasks`` concurrent tasks (the product adds one per upload)."""

    async def add(start: int) -> None:
        for i in range(start, n, tasks):
            await queue.add(f"photo:{i}", PAYLOAD)

    await asyncio.gather(*(add(t) for t in range(tasks)))


async def bench_ours(url: str, n: int) -> dict[str, float]:
    # The roles' own client (a cluster is recognised from the URL).
    redis = await open_redis(load_settings({"FILMSTRIP_REDIS_URL": url}))
    out: dict[str, float] = {}
    await redis.flushall()
    queue = JobQueue(redis, QueueOptions(name="bench-enqueue"))
    t = time.perf_counter()
    await _fill(queue, n)
    out["enqueue"] = n / (time.perf_counter() - t)

    await redis.flushall()
    before = await _used_memory(redis)
    queue = JobQueue(redis, QueueOptions(name="bench-mem"))
    await queue.ensure_groups()
    await _fill(queue, MEMORY_JOBS)
    out["memory"] = await _used_memory(redis) - before

    for c, prefetch in [(c, 0) for c in CONCURRENCIES] + [(c, PREFETCH) for c in CONCURRENCIES]:
        await redis.flushall()
        queue = JobQueue(redis, QueueOptions(name=f"bench-c{c}"))
        await _fill(queue, n)
        noop = _NoOp(n)
        consumer = Consumer(queue, noop, concurrency=c, prefetch=prefetch, name=f"bench-{c}")
        t = time.perf_counter()
        task = asyncio.create_task(consumer.run())
        await noop.finished.wait()
        # Count a job only once its completion is recorded in Redis.
        while (counts := await queue.counts())["waiting"] + counts["active"]:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        out[f"c{c}" + (f"p{prefetch}" if prefetch else "")] = n / (time.perf_counter() - t)
        await consumer.stop()
        await task
    await redis.flushall()
    await redis.aclose()
    return out


def install_bullmq(folder: str) -> Path:
    """``npm install bullmq@5`` into ``folder``; returns the bench script placed beside it."""
    if not shutil.which("npm") or not shutil.which("node"):
        raise RuntimeError("node and npm are needed for the BullMQ side")
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "bullmq@5"],
        cwd=folder, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    script = Path(folder) / "bench.js"
    script.write_text(BULLMQ_SCRIPT.read_text())
    return script


def bench_bullmq(script: Path, port: int, n: int) -> dict[str, float]:
    res = subprocess.run(
        ["node", str(script), str(port), str(n), str(MEMORY_JOBS),
         json.dumps(list(CONCURRENCIES)), PAYLOAD.decode()],
        cwd=script.parent, check=False, capture_output=True, text=True,
    )  # fmt: skip
    if res.returncode:
        raise RuntimeError(f"the BullMQ run failed:\n{res.stderr[-3000:]}")
    result: dict[str, float] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternate ours and BullMQ; medians are shown"
    )
    parser.add_argument("--skip-bullmq", action="store_true")
    parser.add_argument("--cluster", action="store_true", help="ours on a 3-node Redis Cluster too")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    clustered: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bullmq-bench-") as tmp,
        RedisServer(appendonly=False) as server,
        contextlib.ExitStack() as stack,
    ):
        cluster = stack.enter_context(RedisCluster()) if args.cluster else None
        script = None if args.skip_bullmq else install_bullmq(tmp)
        # Alternating the sides spreads this machine's slow spells over all of them.
        for _ in range(args.rounds):
            ours.append(asyncio.run(bench_ours(server.url, args.jobs)))
            if script is not None:
                theirs.append(bench_bullmq(script, server.port, args.jobs))
            if cluster is not None:
                clustered.append(asyncio.run(bench_ours(cluster.url, args.jobs)))
    print(f"{args.jobs} no-op jobs, redis {server.port}, python {sys.version.split()[0]}, "
          f"median of {args.rounds} alternating rounds")  # fmt: skip
    print(f"{'':28}{'ours':>12}{'BullMQ 5':>12}{'ratio':>8}{'per round':>24}")
    rows = [("enqueue jobs/s", "enqueue", "enqueue")]
    rows += [(f"process c={c} jobs/s", f"c{c}", f"c{c}") for c in CONCURRENCIES]
    rows += [(f"  ours prefetch={PREFETCH}, c={c}", f"c{c}p{PREFETCH}", f"c{c}")
             for c in CONCURRENCIES]  # fmt: skip
    rows += [("MiB per 100k waiting jobs", "memory", "memory")]
    for label, mine, other in rows:
        a = median([r[mine] for r in ours])
        b = median([r[other] for r in theirs])
        per_round = [r[mine] / t[other] for r, t in zip(ours, theirs, strict=False) if t.get(other)]
        if mine == "memory":
            a, b = a / 2**20, b / 2**20
        ratio = f"{a / b:8.2f}" if a and b else f"{'-':>8}"
        spread = " ".join(f"{x:.2f}" for x in per_round)
        print(f"{label:28}{a:12,.1f}{b:12,.1f}{ratio}{spread:>24}")
    print("(memory: lower is better; the anchors on these machines are BullMQ ~3,200 jobs/s at")
    print(" concurrency 1 and 12,000-14,000 at 10-50)")
    if clustered:
        print(f"\n{'ours':28}{'single':>12}{'cluster':>12}{'ratio':>8}{'per round':>24}")
        for label, mine, _other in rows:
            a = median([r[mine] for r in ours])
            b = median([r[mine] for r in clustered])
            per_round = [c[mine] / r[mine] for r, c in zip(ours, clustered, strict=True)]
            if mine == "memory":
                a, b = a / 2**20, b / 2**20
            spread = " ".join(f"{x:.2f}" for x in per_round)
            print(f"{label:28}{a:12,.1f}{b:12,.1f}{b / a:8.2f}{spread:>24}")


if __name__ == "__main__":
    main()
