"""Chaos soak: api x2, worker x2, bus x1 as processes over a private appendonly Redis and
S3 on moto; many clients upload while workers are SIGKILLed, Redis restarts, S3 goes away
and the bus restarts. At the end nothing may be lost, duplicated or stuck.

    python -m bench.soak                  # 2,000 uploads with chaos
    python -m bench.soak --clean          # no chaos, plus the bare pipeline's photos/s
    python -m bench.soak -n 60 --fast     # a small run (what the test runs)
    python -m bench.soak --clean --aside-cpus 1   # moto and the clients off the measured CPUs
    python -m bench.soak --clean --s3-endpoint http://minio:9000   # an S3 off this machine

Prints one table; exits non-zero when a guarantee is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.affinity import pin_tree, split_cpus
from bench.bare_pipeline import BARE_SAMPLE, Layout, bare_rate, bare_sample
from bench.moto_server import MotoServer
from bench.procstat import cpu_seconds, tree_cpu_seconds
from bench.role_process import Proc
from bench.soak_clients import ClientStats, Endpoints
from bench.soak_photos import CORPUS, corpus_sources, plan_uploads
from bench.soak_report import bare_figures, print_table, run_figures
from bench.soak_run import run_load
from bench.soak_settings import role_env, worker_threads
from bench.soak_verify import verify
from bench.tcp_proxy import TcpProxy
from filmstrip.catalog.sqlite import SqliteCatalog
from filmstrip.embedded.redis_server import RedisServer, free_port
from filmstrip.embedded.supervisor import Role, Supervisor, command
from filmstrip.services.cli.tokens import issue_token

BUCKET = "soak"
WORKERS = 2


# --- the cluster --------------------------------------------------------------------------


@dataclass
class Cluster:
    data: Path
    redis: RedisServer
    s3: MotoServer | None  # None: the S3 endpoint is elsewhere (``--s3-endpoint``)
    s3_url: str
    bucket: str
    s3_proxy: TcpProxy | None  # only with chaos, which cuts it
    api_urls: list[str]
    bus_url: str
    blobs: str  # "s3" (moto) or "fs"
    supervisor: Supervisor = field(default_factory=lambda: Supervisor([]))
    procs: list[Proc] = field(default_factory=list)
    # With CPUs set aside: the system's CPUs, and moto's (which the soak's clients share).
    cpus: list[int] | None = None
    aside: list[int] | None = None

    def role(self, name: str) -> list[Proc]:
        return [p for p in self.procs if p.role == name]

    @property
    def s3_elsewhere(self) -> bool:
        """The blobs are in an S3 the soak did not start (``--s3-endpoint``)."""
        return self.blobs == "s3" and self.s3 is None

    def store_env(self) -> dict[str, str]:
        """The blob store's settings, straight to the store (not through the proxy)."""
        return blob_env(
            self.blobs, self.data, self.s3_url, bucket=self.bucket, moto=self.s3 is not None
        )

    def store_name(self) -> str:
        if self.blobs == "fs":
            return "filesystem"
        if self.s3 is not None:
            return "S3 on moto"
        return f"S3 at {self.s3_url}, bucket {self.bucket}"

    def pin(self) -> None:
        """Pin the system's processes to ``cpus`` and moto to ``aside``, every thread and
        child they have by now (later ones inherit it)."""
        if self.cpus is None or self.aside is None:
            return
        system = [p.popen.pid for p in self.procs if p.popen is not None]
        if self.redis.proc is not None:
            system.append(self.redis.proc.pid)
        for pid in system:
            pin_tree(pid, self.cpus)
        if self.s3 is not None and self.s3.proc is not None:
            pin_tree(self.s3.proc.pid, self.aside)


def blob_env(
    blobs: str, data: Path, s3_url: str, *, bucket: str = BUCKET, moto: bool = True
) -> dict[str, str]:
    """The roles' blob store settings: S3 at ``s3_url``, or files under ``data``. moto
    takes any keys; another endpoint gets the credentials and region of the environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ...)."""
    if blobs == "fs":
        return {"FILMSTRIP_BLOB_URL": f"file://{data / 'blobs'}"}
    env = {"FILMSTRIP_BLOB_URL": f"s3://{bucket}", "FILMSTRIP_S3_ENDPOINT_URL": s3_url}
    if moto:
        env.update(FILMSTRIP_S3_ACCESS_KEY_ID="soak", FILMSTRIP_S3_SECRET_ACCESS_KEY="soak")
    elif region := os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        env["FILMSTRIP_S3_REGION"] = region
    return env


async def start_cluster(
    data: Path,
    *,
    apis: int = 2,
    workers: int = WORKERS,
    blobs: str = "s3",
    chaos: bool = True,
    cpus: list[int] | None = None,
    aside: list[int] | None = None,
    s3_endpoint: str | None = None,
) -> Cluster:
    redis = RedisServer(data / "redis", appendonly=True)
    redis.start()
    s3: MotoServer | None = None
    if s3_endpoint is None:
        s3 = MotoServer()
        s3.start()
    s3_url = s3.url if s3 is not None else s3_endpoint
    assert s3_url is not None
    # Elsewhere the bucket is the run's own, removed after a good run; moto's goes with it.
    bucket = BUCKET if s3 is not None else f"filmstrip-soak-{os.urandom(4).hex()}"
    # With chaos the roles reach S3 through a proxy the soak can cut: an outage that keeps
    # moto's data. A clean run goes direct: the proxy copies every byte through this process
    # on the same two cores, a cost no deployment has.
    # (--s3-endpoint goes with --clean: the chaos run cuts moto through the proxy.)
    proxy = TcpProxy("127.0.0.1", s3.port) if chaos and s3 is not None else None
    if proxy is not None:
        await proxy.start()
    bus_port = free_port()
    base = role_env(chaos=chaos, threads=worker_threads(workers, len(cpus) if cpus else None))
    base.update(
        FILMSTRIP_DATA_DIR=str(data),
        FILMSTRIP_REDIS_URL=redis.url,
        **blob_env(
            blobs,
            data,
            proxy.url if proxy is not None else s3_url,
            bucket=bucket,
            moto=s3 is not None,
        ),
        FILMSTRIP_BUS_PORT=str(bus_port),
    )
    cluster = Cluster(
        data,
        redis,
        s3,
        s3_url,
        bucket,
        proxy,
        [],
        f"ws://127.0.0.1:{bus_port}/ws",
        blobs,
        cpus=cpus,
        aside=aside,
    )
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    roles = []
    for i in range(apis):
        port = free_port()
        env = {**base, "FILMSTRIP_API_PORT": str(port)}
        health = f"http://127.0.0.1:{port}/readyz"
        roles.append(Role(f"api{i}", command("api"), env, health, logs / f"api{i}.log"))
        cluster.api_urls.append(f"http://127.0.0.1:{port}")
    for i in range(workers):
        roles.append(Role(f"worker{i}", command("worker"), base, None, logs / f"worker{i}.log"))
    health = f"http://127.0.0.1:{bus_port}/healthz"
    roles.append(Role("bus", command("bus"), base, health, logs / "bus.log"))
    cluster.supervisor = Supervisor(roles)
    cluster.procs = [Proc(r.name.rstrip("0123456789"), r.name, cluster.supervisor) for r in roles]
    cluster.supervisor.start()
    # At once, before they start their threads; again once they are ready (wait_ready).
    cluster.pin()
    return cluster


async def wait_ready(cluster: Cluster, limit_s: float = 60) -> None:
    await asyncio.to_thread(cluster.supervisor.wait_ready, timeout=limit_s)
    cluster.pin()  # the threads they started since


async def stop_cluster(cluster: Cluster) -> None:
    for proc in cluster.procs:
        proc.bank()
    await asyncio.to_thread(cluster.supervisor.stop)
    cluster.redis.stop()
    if cluster.s3_proxy is not None:
        await cluster.s3_proxy.close()
    if cluster.s3 is not None:
        cluster.s3.stop()


# --- chaos --------------------------------------------------------------------------------


async def chaos(
    cluster: Cluster,
    progress: Callable[[], float],
    stop: asyncio.Event,
    *,
    fast: bool,
    log: list[str],
) -> None:
    """SIGKILL a random worker every period and restart it; and, as the uploads pass set
    fractions of the run: restart Redis, cut S3 for a while, restart the bus."""
    period = 3.0 if fast else 10.0
    outage = 2.0 if fast else 5.0
    rng = random.Random(7)
    t0 = time.monotonic()
    next_kill = t0 + period
    milestones = [(0.2, "redis"), (0.4, "s3"), (0.6, "bus")]

    def note(what: str) -> None:
        log.append(f"{time.monotonic() - t0:6.1f}s {what}")

    async def kill_worker() -> None:
        victim = rng.choice(cluster.role("worker"))
        await asyncio.to_thread(victim.kill)
        victim.start()
        note("SIGKILL a worker and restart it")

    while not stop.is_set():
        await asyncio.sleep(0.05)
        if time.monotonic() >= next_kill:
            next_kill += period
            await kill_worker()
        if milestones and progress() >= milestones[0][0]:
            _, what = milestones.pop(0)
            if what == "redis":
                await asyncio.to_thread(cluster.redis.restart)
                note("restart Redis (appendonly)")
            elif what == "s3":
                assert cluster.s3_proxy is not None  # chaos runs have one
                await cluster.s3_proxy.pause()
                await asyncio.sleep(outage)
                await cluster.s3_proxy.resume()
                note(f"S3 unreachable for {outage:.0f} s")
            elif what == "bus":
                bus = cluster.role("bus")[0]
                await asyncio.to_thread(bus.stop)
                bus.start()
                note("restart the bus")
                await kill_worker()


def cpu_by_role(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of every process of the run, summed per role."""
    out: dict[str, float] = {}
    for proc in cluster.procs:
        out[proc.role] = out.get(proc.role, 0.0) + proc.cpu_s()
    moto = cluster.s3.proc if cluster.s3 is not None else None
    for role, popen in (("redis", cluster.redis.proc), ("s3 (moto)", moto)):
        if popen is not None:
            out[role] = tree_cpu_seconds(popen.pid) or 0.0
    out["soak clients (+ S3 proxy with chaos)"] = cpu_seconds(os.getpid()) or 0.0
    return out


# --- main ---------------------------------------------------------------------------------


async def soak(
    n: int,
    clients: int,
    *,
    chaos_on: bool,
    fast: bool,
    blobs: str = "s3",
    split: tuple[list[int], list[int]] | None = None,
    s3_endpoint: str | None = None,
) -> int:
    """The run; ``split`` is (the system's CPUs, moto's and the clients'), or None to pin
    nothing; ``s3_endpoint`` an S3 to use instead of starting moto."""
    good, bad = corpus_sources()
    plans, uses = plan_uploads(n, clients, good, bad, hostile=chaos_on)

    data = Path(tempfile.mkdtemp(prefix="filmstrip-soak-"))
    catalog = SqliteCatalog(str(data / "filmstrip.db"))
    await catalog.connect()
    tokens = [(await issue_token(catalog, f"soak-{i}", admin=False))[1] for i in range(clients)]
    await catalog.close()

    # The bare pipeline runs before the system and again after it, and the two are
    # averaged: this machine's speed drifts by several percent over a run.
    cpus, aside = split if split is not None else (None, None)
    if aside is not None:
        # Option (b) of the S3 question: moto and this process (the clients) off the
        # measured CPUs, as a real S3 endpoint and real clients are off the box.
        pin_tree(os.getpid(), aside)
    cores = len(cpus) if cpus else (os.cpu_count() or 1)
    layouts = [Layout(1, cores), Layout(WORKERS, worker_threads(WORKERS, cores))]
    bare_before: dict[Layout, tuple[float, float]] = {}
    sample = bare_sample(good, uses, BARE_SAMPLE)
    if not chaos_on:
        for layout in layouts:
            bare_before[layout] = await asyncio.to_thread(bare_rate, sample, layout, cpus=cpus)
    cluster = await start_cluster(
        data, blobs=blobs, chaos=chaos_on, cpus=cpus, aside=aside, s3_endpoint=s3_endpoint
    )
    chaos_log: list[str] = []
    code = 1
    try:
        await wait_ready(cluster)

        async def check(stats: list[ClientStats]) -> tuple[dict[str, Any], list[str]]:
            catalog = SqliteCatalog(str(cluster.data / "filmstrip.db"))
            await catalog.connect()
            try:
                return await verify(
                    catalog, cluster.store_env(), cluster.redis.url, stats,
                    limit_s=20 if fast else 60,
                )  # fmt: skip
            finally:
                await catalog.close()

        async def strike(stats: list[ClientStats], stop: asyncio.Event) -> None:
            def progress() -> float:
                return sum(len(s.accepted) for s in stats) / n

            await chaos(cluster, progress, stop, fast=fast, log=chaos_log)

        run = await run_load(
            tokens=tokens,
            plans=plans,
            endpoints=Endpoints(cluster.api_urls, [cluster.bus_url]),
            redis_url=cluster.redis.url,
            procs=lambda: cluster.procs,
            cpu_by_kind=lambda: cpu_by_role(cluster),
            check=check,
            cpus=cpus,
            fast=fast,
            chaos=strike if chaos_on else None,
        )
        report = run.report
        run_figures(report, cluster.procs, run.cpu_used, run.rate, run.elapsed, run.shares)
        if not chaos_on:
            # The system's own processes: the soak's clients and moto (an S3 server in
            # Python; a real S3 is off the box) share the cores but are not Filmstrip.
            await bare_figures(
                report, layouts=layouts, sample=sample, cpus=cpus, before=bare_before,
                rate=run.rate, cpu_used=run.cpu_used, own=("api", "worker", "bus", "redis"),
                loop_cpu=run.loop_cpu, cores=cores,
            )  # fmt: skip
        notes = []
        if cpus is not None:
            notes.append(
                f"CPUs {cpus}: the system and the bare pipeline;"
                f" CPUs {aside}: {'moto and ' if cluster.s3 is not None else ''}the soak's clients"
            )
        code = print_table(
            f"Filmstrip soak: {n} uploads, {clients} clients, "
            f"chaos {'on' if chaos_on else 'off'}, blobs {cluster.store_name()}",
            notes, chaos_log, report, run.problems,
        )  # fmt: skip
    finally:
        await stop_cluster(cluster)
        if code == 0:
            if cluster.s3_elsewhere:
                await remove_bucket(cluster)
            shutil.rmtree(data, ignore_errors=True)
        else:
            print(f"  logs and data kept in {data}")
            if cluster.s3_elsewhere:
                print(f"  and the blobs in bucket {cluster.bucket} at {cluster.s3_url}")
    return code


async def remove_bucket(cluster: Cluster) -> None:
    """Empty and delete the run's bucket on an S3 elsewhere (it costs storage there)."""
    from filmstrip.blobs import open_blob_store
    from filmstrip.blobs.s3 import S3BlobStore
    from filmstrip.settings import load_settings

    store = await open_blob_store(load_settings(cluster.store_env()))
    try:
        assert isinstance(store, S3BlobStore)
        await store.delete_prefix("")
        await store.client.delete_bucket(Bucket=store.bucket)
    except Exception as exc:  # the run's verdict stands; say what is left behind
        print(f"  could not remove bucket {cluster.bucket} at {cluster.s3_url}: {exc}")
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=2000, help="uploads (default 2000)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--clean", action="store_true", help="no chaos; compare with the bare pipeline"
    )
    parser.add_argument("--fast", action="store_true", help="chaos every 3 s instead of 10 s")
    parser.add_argument(
        "--blobs",
        choices=("s3", "fs"),
        default="s3",
        help="blob store: S3 on moto (default; moto's CPU shares the machine) or files",
    )
    parser.add_argument(
        "--aside-cpus",
        type=int,
        default=0,
        metavar="N",
        help="with --clean: run moto and the soak's clients on the last N CPUs, the system"
        " and the bare pipeline on the others (S3 off the measured cores, as it is in a"
        " deployment)",
    )
    parser.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="with --clean: the S3 (MinIO, AWS, ...) to use instead of starting moto, with"
        " the credentials of the environment (AWS_ACCESS_KEY_ID, ...); the run makes a bucket"
        " of its own there and removes it after a good run",
    )
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"the corpus {CORPUS} is missing", file=sys.stderr)
        return 2
    if args.blobs == "fs" and not args.clean:
        print("the chaos run cuts S3: --blobs fs goes with --clean", file=sys.stderr)
        return 2
    if args.s3_endpoint and (not args.clean or args.blobs != "s3"):
        # The chaos run cuts S3 through a proxy in front of the moto it started.
        print("--s3-endpoint goes with --clean and S3 blobs", file=sys.stderr)
        return 2
    if args.aside_cpus and not args.clean:
        # A restarted process would not be pinned; the chaos run measures guarantees.
        print("--aside-cpus goes with --clean", file=sys.stderr)
        return 2
    split = None
    if args.aside_cpus:
        try:
            split = split_cpus(args.aside_cpus)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    run = soak(
        args.n,
        args.clients,
        chaos_on=not args.clean,
        fast=args.fast,
        blobs=args.blobs,
        split=split,
        s3_endpoint=args.s3_endpoint,
    )
    try:
        import uvloop

        return uvloop.run(run)
    except ImportError:
        return asyncio.run(run)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
