"""Throughput of our queue vs BullMQ 5 on the same private redis-server.

Runs no-op jobs through ``filmstrip.queue`` (one Python process, uvloop) and through BullMQ
(one Node process, installed by this script into a temp folder from the npm registry), and
prints jobs/s for enqueue (ours: ``add`` from 50 tasks at once, as uploads add jobs;
BullMQ: ``addBulk``) and for processing at concurrency 1, 10 and 50, the ratio ours/BullMQ,
Redis memory per 100,000 waiting jobs, and the CPU per job of the consuming process and of
Redis. Each processing figure is measured right beside BullMQ's at the same concurrency:
on a shared machine jobs/s swing with the neighbours' load, CPU per job much less. With
``--cluster`` ours also runs on a private 3-node Redis Cluster (its keys are on one slot,
so one node serves the queue; scripts go through redis-py's cluster client), with the
ratio cluster/single.

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


async def _redis_cpu_s(redis: RedisClient) -> float:
    """Redis CPU seconds so far (summed over a cluster's masters)."""
    if isinstance(redis, RedisClusterClient):
        per_node = await redis.info("cpu", target_nodes=RedisClusterClient.PRIMARIES)
        infos = list(per_node.values())
    else:
        infos = [await redis.info("cpu")]
    return sum(float(i["used_cpu_user"]) + float(i["used_cpu_sys"]) for i in infos)


async def _open(url: str) -> RedisClient:
    # The roles' own client (a cluster is recognised from the URL), with room for the 50
    # adding tasks beside the connections a consumer's script wire keeps: with exactly 50,
    # adders that waited for one starved behind those that never let go.
    settings = load_settings({"FILMSTRIP_REDIS_URL": url, "FILMSTRIP_REDIS_MAX_CONNECTIONS": "64"})
    return await open_redis(settings)


async def bench_enqueue(url: str, n: int) -> dict[str, float]:
    """Jobs/s adding ``n`` jobs, and Redis memory held by ``MEMORY_JOBS`` waiting jobs."""
    redis = await _open(url)
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
    await redis.flushall()
    await redis.aclose()
    return out


async def bench_process(url: str, n: int, c: int, prefetch: int) -> dict[str, float]:
    """Jobs/s processing ``n`` no-op jobs at concurrency ``c``, and the CPU µs per job of
    this process and of Redis while it ran."""
    redis = await _open(url)
    await redis.flushall()
    queue = JobQueue(redis, QueueOptions(name=f"bench-c{c}"))
    await _fill(queue, n)
    noop = _NoOp(n)
    consumer = Consumer(queue, noop, concurrency=c, prefetch=prefetch, name=f"bench-{c}")
    cpu0, rcpu0 = time.process_time(), await _redis_cpu_s(redis)
    t = time.perf_counter()
    task = asyncio.create_task(consumer.run())
    await noop.finished.wait()
    # Count a job only once its completion is recorded in Redis.
    while (counts := await queue.counts())["waiting"] + counts["active"]:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    key = f"c{c}" + (f"p{prefetch}" if prefetch else "")
    out = {key: n / (time.perf_counter() - t)}
    out[key + "cpu"] = (time.process_time() - cpu0) * 1e6 / n
    out[key + "rcpu"] = (await _redis_cpu_s(redis) - rcpu0) * 1e6 / n
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


def bench_bullmq(
    script: Path, port: int, n: int, mem_jobs: int, concs: list[int]
) -> dict[str, float]:
    res = subprocess.run(
        ["node", str(script), str(port), str(n), str(mem_jobs), json.dumps(concs),
         PAYLOAD.decode()],
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
        # Alternating the sides, each measurement beside its counterpart (ours at c, then
        # BullMQ at c), spreads this machine's slow spells over all of them.
        for _ in range(args.rounds):
            mine = asyncio.run(bench_enqueue(server.url, args.jobs))
            other = bench_bullmq(script, server.port, args.jobs, MEMORY_JOBS, []) if script else {}
            on_cluster = asyncio.run(bench_enqueue(cluster.url, args.jobs)) if cluster else {}
            for c in CONCURRENCIES:
                mine |= asyncio.run(bench_process(server.url, args.jobs, c, 0))
                if script is not None:
                    other |= bench_bullmq(script, server.port, args.jobs, 0, [c])
                mine |= asyncio.run(bench_process(server.url, args.jobs, c, PREFETCH))
                if cluster is not None:
                    on_cluster |= asyncio.run(bench_process(cluster.url, args.jobs, c, 0))
                    on_cluster |= asyncio.run(bench_process(cluster.url, args.jobs, c, PREFETCH))
            ours.append(mine)
            if other:
                theirs.append(other)
            if on_cluster:
                clustered.append(on_cluster)
    print(f"{args.jobs} no-op jobs, redis {server.port}, python {sys.version.split()[0]}, "
          f"median of {args.rounds} alternating rounds")  # fmt: skip
    print(f"{'':28}{'ours':>12}{'BullMQ 5':>12}{'ratio':>8}{'per round':>24}")
    rows = [("enqueue jobs/s", "enqueue", "enqueue")]
    rows += [(f"process c={c} jobs/s", f"c{c}", f"c{c}") for c in CONCURRENCIES]
    rows += [(f"  ours prefetch={PREFETCH}, c={c}", f"c{c}p{PREFETCH}", f"c{c}")
             for c in CONCURRENCIES]  # fmt: skip
    rows += [("MiB per 100k waiting jobs", "memory", "memory")]
    rows += [(f"CPU µs/job c={c}, client", f"c{c}cpu", f"c{c}cpu") for c in CONCURRENCIES]
    rows += [(f"CPU µs/job c={c}, Redis", f"c{c}rcpu", f"c{c}rcpu") for c in CONCURRENCIES]
    for label, mine, other in rows:
        a = median([r[mine] for r in ours])
        b = median([r[other] for r in theirs])
        per_round = [r[mine] / t[other] for r, t in zip(ours, theirs, strict=False) if t.get(other)]
        if mine == "memory":
            a, b = a / 2**20, b / 2**20
        ratio = f"{a / b:8.2f}" if a and b else f"{'-':>8}"
        spread = " ".join(f"{x:.2f}" for x in per_round)
        print(f"{label:28}{a:12,.1f}{b:12,.1f}{ratio}{spread:>24}")
    print("(target: jobs/s ratio >= 2 at each concurrency without prefetch; memory and CPU:")
    print(" lower is better; CPU per job holds still on a busy machine where jobs/s do not)")
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
