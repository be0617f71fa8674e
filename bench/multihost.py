"""Multi-host soak: api x2, worker x2 and bus x2, each on a host of its own (a network
namespace with its own address and hostname, and a private tmpfs as its disk: no shared
filesystem), over Redis, PostgreSQL and SeaweedFS (a real S3 server) on an infra host;
the clients on one more. Chaos strikes across hosts: a worker host SIGKILLed (all its
processes; it comes back with an empty disk), an api host's link cut mid-upload, then
PostgreSQL, a bus and Redis restarted. At the end nothing may be lost, duplicated or
stuck, no event missed, no blob orphaned.

    python -m bench.multihost                     # 2,000 uploads with chaos
    python -m bench.multihost -n 30 --fast        # a small run (what the test runs)
    python -m bench.multihost --clean --aside-cpus 1   # no chaos, beside the bare pipeline
                                                       # (also in slices during the run:
                                                       # bench/interleave)
    python -m bench.multihost --clean --worker-hosts 1 # photos/s with one worker host

Root only (network namespaces). Traffic stays between the namespaces it made; the root
namespace gets no interface in them. Everything it made is removed at the end, also on
failure or Ctrl-C, and what a killed earlier run left is removed at the start. Prints
one table; exits non-zero when a guarantee is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from bench.affinity import pin_tree, split_cpus
from bench.bare_pipeline import BARE_SAMPLE, Layout, bare_rate, bare_sample
from bench.hosts import Host, Network, cleanup_stale, enter_netns, unavailable
from bench.infra import HostPostgres, HostRedis
from bench.interleave import SlicedBare
from bench.postgres import commits
from bench.procstat import cpu_seconds, tree_cpu_seconds
from bench.role_process import Proc
from bench.seaweed import SeaweedFS
from bench.soak_clients import ClientStats, Endpoints
from bench.soak_photos import CORPUS, corpus_sources, plan_uploads
from bench.soak_report import bare_figures, print_table, run_figures
from bench.soak_run import run_load
from bench.soak_settings import role_env, worker_threads
from bench.soak_verify import verify
from filmstrip.embedded.supervisor import Role, Supervisor, command

API_PORT = 8080
BUS_PORT = 8081
BUCKET = "filmstrip"
DATABASE = "filmstrip"
# Each upload attempt's limit: one whose link was cut hangs until then and is retried.
UPLOAD_TIMEOUT_S = 20.0


@dataclass
class Deployment:
    network: Network
    infra: Host
    redis: HostRedis
    postgres: HostPostgres
    s3: SeaweedFS
    database_url: str
    cpus: list[int] | None  # the system's CPUs (None: no pinning)
    aside: list[int] | None  # SeaweedFS's, PostgreSQL's and the clients'
    hosts: dict[str, Host] = field(default_factory=dict)  # the roles' hosts by name
    supervisor: Supervisor = field(default_factory=lambda: Supervisor([]))
    on_host: dict[str, list[Proc]] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    infra_cpu_before: dict[str, float] = field(default_factory=dict)  # of restarted ones

    def role_hosts(self, role: str) -> list[Host]:
        return [h for name, h in self.hosts.items() if name.rstrip("0123456789") == role]

    @property
    def api_urls(self) -> list[str]:
        return [f"http://{h.address}:{API_PORT}" for h in self.role_hosts("api")]

    @property
    def bus_urls(self) -> list[str]:
        return [f"ws://{h.address}:{BUS_PORT}/ws" for h in self.role_hosts("bus")]

    def store_env(self) -> dict[str, str]:
        return self.s3.env(BUCKET)

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds so far per process kind (a killed worker's counted too)."""
        out: dict[str, float] = {}
        for proc in self.procs:
            out[proc.role] = out.get(proc.role, 0.0) + proc.cpu_s()
        for kind, cpu in self.infra_cpu().items():
            out[kind] = self.infra_cpu_before.get(kind, 0.0) + cpu
        out["clients"] = cpu_seconds(os.getpid()) or 0.0
        return out

    def infra_cpu(self) -> dict[str, float]:
        """CPU seconds of the infra servers running now."""
        out = {}
        for kind, popen in (
            ("redis", self.redis.proc),
            ("postgres", self.postgres.proc),
            ("seaweedfs", self.s3.proc),
        ):
            if popen is not None:
                out[kind] = tree_cpu_seconds(popen.pid) or 0.0
        return out

    def bank_infra(self, kind: str) -> None:
        """Before infra server ``kind`` restarts: what it used so far stays counted."""
        cpu = self.infra_cpu().get(kind, 0.0)
        self.infra_cpu_before[kind] = self.infra_cpu_before.get(kind, 0.0) + cpu

    def launch(self, role: Role) -> subprocess.Popen[bytes]:
        """Start ``role`` (named ``<host>.<role>``) on its host."""
        host = self.hosts[role.name.split(".")[0]]
        # The host's disk is new after each boot: the role's data dir goes on it.
        host.outside("filmstrip").mkdir(exist_ok=True)
        return host.popen(role.argv, env=role.env, log=role.name.split(".")[1], cpus=self.cpus)

    def kill_host(self, host: Host) -> None:
        """SIGKILL every process of ``host``; it boots again with an empty disk and its
        roles start again."""
        procs = self.on_host.get(host.name, [])
        for proc in procs:
            proc.bank()
        host.kill()
        host.boot()
        for proc in procs:
            proc.start()


def build_network(role_hosts: list[str]) -> Network:
    """The hub, the infra host, the roles' hosts and the clients' host (no disk: this
    process's main thread enters it). Removed again if any of it fails."""
    network = Network().create()
    try:
        network.host("infra")
        for name in role_hosts:
            network.host(name)
        network.host("clients", boot=False)
    except BaseException:
        network.close()
        raise
    return network


async def start_deployment(
    network: Network,
    infra: Host,
    *,
    chaos: bool,
    workers: int,
    cpus: list[int] | None,
    aside: list[int] | None,
    sign_payload: str = "auto",
) -> Deployment:
    """Redis, PostgreSQL and SeaweedFS on ``infra``; the roles on their hosts."""
    redis = HostRedis(infra, cpus=cpus)
    postgres = HostPostgres(infra, cpus=aside)
    s3 = SeaweedFS(infra, access_key="filmstrip-soak", secret_key=os.urandom(16).hex(), cpus=aside)
    dep = Deployment(network, infra, redis, postgres, s3, "", cpus, aside)
    await asyncio.to_thread(redis.start)
    await asyncio.to_thread(postgres.init)
    await asyncio.to_thread(postgres.start)
    dep.database_url = await asyncio.to_thread(postgres.create_database, DATABASE)
    await asyncio.to_thread(s3.start)
    await wait_store(dep.store_env())
    cores = len(cpus) if cpus else (os.cpu_count() or 1)
    base = role_env(chaos=chaos, threads=worker_threads(workers, cores), packed=workers > cores)
    roles = []
    for name, host in network.hosts.items():
        role = name.rstrip("0123456789")
        if role not in ("api", "worker", "bus"):
            continue
        dep.hosts[name] = host
        env = {
            **base,
            **dep.store_env(),
            "FILMSTRIP_DATA_DIR": str(host.disk / "filmstrip"),
            "FILMSTRIP_REDIS_URL": redis.url,
            "FILMSTRIP_DATABASE_URL": dep.database_url,
            "FILMSTRIP_API_HOST": host.address,
            "FILMSTRIP_API_PORT": str(API_PORT),
            "FILMSTRIP_BUS_HOST": host.address,
            "FILMSTRIP_BUS_PORT": str(BUS_PORT),
            "FILMSTRIP_S3_SIGN_PAYLOAD": sign_payload,
        }
        health = {
            "api": f"http://{host.address}:{API_PORT}/readyz",
            "bus": f"http://{host.address}:{BUS_PORT}/healthz",
        }.get(role)
        roles.append(Role(f"{name}.{role}", command(role), env, health))
    dep.supervisor = Supervisor(roles, launch=dep.launch)
    for r in roles:
        host_name, role = r.name.split(".")
        proc = Proc(role, r.name, dep.supervisor)
        dep.procs.append(proc)
        dep.on_host.setdefault(host_name, []).append(proc)
    dep.supervisor.start()
    return dep


async def wait_store(store_env: dict[str, str], limit_s: float = 60) -> None:
    """Until the store takes a write (SeaweedFS answers before its volumes are ready)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from filmstrip.blobs import open_blob_store
    from filmstrip.errors import FilmstripError
    from filmstrip.settings import load_settings

    deadline = time.monotonic() + limit_s
    while True:
        try:
            store = await open_blob_store(load_settings(store_env))
            try:
                await store.put_bytes("probe/ready", b"ready", content_type="text/plain")
                await store.delete("probe/ready")
                return
            finally:
                await store.close()
        except (FilmstripError, BotoCoreError, ClientError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def wait_ready(dep: Deployment, limit_s: float = 90) -> None:
    await asyncio.to_thread(dep.supervisor.wait_ready, timeout=limit_s)


async def stop_deployment(dep: Deployment) -> None:
    for proc in dep.procs:
        proc.bank()
    await asyncio.to_thread(dep.supervisor.stop, timeout=10)
    dep.s3.stop()
    await asyncio.to_thread(dep.postgres.stop)
    dep.redis.stop(kill=True)


# --- chaos --------------------------------------------------------------------------------


async def chaos(
    dep: Deployment,
    stats: list[ClientStats],
    n: int,
    stop: asyncio.Event,
    *,
    fast: bool,
    log: list[str],
) -> None:
    """A worker host SIGKILLed every period (and brought back), and as the uploads pass
    set fractions of the run: an api host's link cut for a while, PostgreSQL restarted,
    a bus restarted, Redis restarted."""
    period = 5.0 if fast else 12.0
    outage = 3.0 if fast else 6.0
    rng = random.Random(7)
    t0 = time.monotonic()
    next_kill = t0 + period
    milestones = [(0.1, "link"), (0.2, "worker"), (0.35, "postgres"), (0.5, "bus"), (0.65, "redis")]

    def note(what: str) -> None:
        log.append(f"{time.monotonic() - t0:6.1f}s {what}")

    def progress() -> float:
        return sum(len(s.accepted) for s in stats) / n

    async def kill_worker_host() -> None:
        victim = rng.choice(dep.role_hosts("worker"))
        await asyncio.to_thread(dep.kill_host, victim)
        note(f"SIGKILL host {victim.name} (all its processes), boot it again, start its worker")

    while not stop.is_set():
        await asyncio.sleep(0.05)
        if time.monotonic() >= next_kill:
            next_kill += period
            await kill_worker_host()
        if milestones and progress() >= milestones[0][0]:
            _, what = milestones.pop(0)
            if what == "worker":
                await kill_worker_host()
            elif what == "link":
                api = dep.role_hosts("api")[0]
                url = f"http://{api.address}:{API_PORT}"
                # Mid-upload: once some upload to it is under way (the clients pick an
                # api at random for each upload).
                until = time.monotonic() + 10
                while not (in_flight := sum(s.in_flight.get(url, 0) for s in stats)):
                    if time.monotonic() > until:
                        break
                    await asyncio.sleep(0.001)
                await asyncio.to_thread(api.link, False)
                await asyncio.sleep(outage)
                await asyncio.to_thread(api.link, True)
                note(f"cut host {api.name}'s link for {outage:.0f} s"
                     f" ({in_flight} uploads to it under way)")  # fmt: skip
            elif what == "postgres":
                dep.bank_infra("postgres")
                await asyncio.to_thread(dep.postgres.restart)
                note("restart PostgreSQL (fast shutdown)")
            elif what == "bus":
                bus = dep.on_host[dep.role_hosts("bus")[0].name][0]
                await asyncio.to_thread(bus.stop)
                bus.start()
                note("restart a bus")
            elif what == "redis":
                dep.bank_infra("redis")
                await asyncio.to_thread(dep.redis.restart)
                note("restart Redis (appendonly)")


# --- main ---------------------------------------------------------------------------------


async def multihost(
    network: Network,
    *,
    n: int,
    clients: int,
    chaos_on: bool,
    fast: bool,
    workers: int,
    split: tuple[list[int], list[int]] | None,
    sign_payload: str = "auto",
) -> int:
    """The run on ``network`` (made by :func:`build_network`; this thread is already in
    its clients' namespace)."""
    from filmstrip.catalog import catalog_for_url
    from filmstrip.services.cli.tokens import issue_token

    good, bad = corpus_sources()
    plans, uses = plan_uploads(n, clients, good, bad, hostile=chaos_on)
    cpus, aside = split if split is not None else (None, None)
    infra = network.hosts["infra"]
    code = 1
    dep: Deployment | None = None
    sliced: SlicedBare | None = None
    try:
        if aside is not None:
            pin_tree(os.getpid(), aside)
        cores = len(cpus) if cpus else (os.cpu_count() or 1)
        layouts = [Layout(1, cores), Layout(workers, worker_threads(workers, cores))]
        sample = bare_sample(good, uses, BARE_SAMPLE)
        bare_before: dict[Layout, tuple[float, float]] = {}
        if not chaos_on:
            for layout in dict.fromkeys(layouts):
                bare_before[layout] = await asyncio.to_thread(bare_rate, sample, layout, cpus=cpus)
        if not chaos_on and cpus:
            # Started and warmed up now, idle until the run stops the system for a slice.
            sliced = SlicedBare(sample, list(dict.fromkeys(layouts)), cpus)
            await asyncio.to_thread(sliced.start)
        dep = await start_deployment(
            network,
            infra,
            chaos=chaos_on,
            workers=workers,
            cpus=cpus,
            aside=aside,
            sign_payload=sign_payload,
        )
        catalog = catalog_for_url(dep.database_url)
        await catalog.connect()
        try:
            tokens = [
                (await issue_token(catalog, f"soak-{i}", admin=False))[1] for i in range(clients)
            ]
            await wait_ready(dep)
            chaos_log: list[str] = []

            async def check(stats: list[ClientStats]) -> tuple[dict[str, Any], list[str]]:
                return await verify(
                    catalog, dep.store_env(), dep.redis.url, stats, limit_s=20 if fast else 60
                )

            async def strike(stats: list[ClientStats], stop: asyncio.Event) -> None:
                assert dep is not None
                await chaos(dep, stats, n, stop, fast=fast, log=chaos_log)

            deployment = dep
            commits_before = await commits(dep.database_url)
            interleave = None
            if sliced is not None:

                def measured_pids() -> list[int]:
                    pids = [p.popen.pid for p in deployment.procs if p.popen is not None]
                    redis = deployment.redis.proc
                    return pids + ([redis.pid] if redis is not None else [])

                slicing = sliced

                async def slice_between(stop: asyncio.Event) -> None:
                    await slicing.run(measured_pids(), stop)

                interleave = (slice_between, sliced.stopped_within)

            run = await run_load(
                tokens=tokens,
                plans=plans,
                endpoints=Endpoints(dep.api_urls, dep.bus_urls, UPLOAD_TIMEOUT_S),
                redis_url=dep.redis.url,
                procs=lambda: deployment.procs,
                cpu_by_kind=deployment.cpu_by_kind,
                check=check,
                cpus=cpus,
                fast=fast,
                chaos=strike if chaos_on else None,
                aside=aside,
                interleave=interleave,
            )
            per_photo_commits = (await commits(dep.database_url) - commits_before) / max(
                1, run.report["completed"]
            )
        finally:
            await catalog.close()
        report = run.report
        run_figures(report, dep.procs, run.cpu_used, run.rate, run.elapsed, run.shares)
        if not chaos_on:
            await bare_figures(
                report, layouts=list(dict.fromkeys(layouts)), sample=sample, cpus=cpus,
                before=bare_before, rate=run.rate, cpu_used=run.cpu_used,
                own=("api", "worker", "bus", "redis"), loop_cpu=run.loop_cpu, cores=cores,
            )  # fmt: skip
            if sliced is not None:
                interleaved_figures(report, sliced, run.rate)
            if run.aside_shares:
                report["aside CPUs busy during the run"] = f"{run.aside_shares[0]:.0%}"
            report["catalog transactions per photo (PostgreSQL's count)"] = (
                f"{per_photo_commits:.1f}"
            )
        notes = [
            "hosts: "
            + ", ".join(f"{h.name} {h.address}" for h in network.hosts.values())
            + f"; catalog PostgreSQL, blobs SeaweedFS S3, Redis, all on {infra.name}"
        ]
        if cpus is not None:
            notes.append(
                f"CPUs {cpus}: api, worker, bus, Redis and the bare pipeline;"
                f" CPUs {aside}: SeaweedFS, PostgreSQL and the clients"
            )
        code = print_table(
            f"Filmstrip multi-host soak: {n} uploads, {clients} clients, {workers} worker"
            f" host{'s' if workers > 1 else ''}, chaos {'on' if chaos_on else 'off'}",
            notes, chaos_log, report, run.problems,
        )  # fmt: skip
    finally:
        if sliced is not None:
            sliced.close()
        if dep is not None:
            with contextlib.suppress(Exception):
                await stop_deployment(dep)
    return code


def interleaved_figures(report: dict[str, Any], sliced: SlicedBare, rate: float) -> None:
    """The bare pipeline measured in slices during the run, and the ratio against it."""
    if not sliced.stopped_s:
        return  # a run shorter than one interval
    best: tuple[float, Layout] | None = None
    parts = []
    cores = len(sliced.cpus or []) or 1
    for layout in sliced.layouts:
        cpu, covered = sliced.cpu_per_photo(layout)
        if not covered:
            continue
        bare = min(layout.processes, cores) / cpu
        parts.append(f"{layout}: {bare:.2f} ({covered:.0%} of the sample measured)")
        if best is None or bare > best[0]:
            best = (bare, layout)
    stopped = sum(b - a for a, b in sliced.stopped_s)
    report["bare pipeline photos/s in slices during the run"] = (
        "; ".join(parts) + f"; the system stopped {len(sliced.stopped_s)} times, {stopped:.0f} s"
    )
    if best is not None:
        report["ratio end-to-end / bare in slices during the run"] = f"{rate / best[0]:.2f}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=2000, help="uploads (default 2000)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--clean", action="store_true", help="no chaos; compare with the bare pipeline"
    )
    parser.add_argument("--fast", action="store_true", help="a worker host killed every 5 s")
    parser.add_argument(
        "--worker-hosts", type=int, default=2, choices=(1, 2, 3, 4), help="worker hosts (default 2)"
    )
    parser.add_argument(
        "--aside-cpus",
        type=int,
        default=0,
        metavar="N",
        help="run SeaweedFS, PostgreSQL and the clients on the last N CPUs; the system"
        " (api, worker, bus, Redis) and the bare pipeline on the others",
    )
    parser.add_argument(
        "--s3-sign-payload",
        choices=("auto", "true", "false"),
        default="auto",
        help="the roles' FILMSTRIP_S3_SIGN_PAYLOAD (auto: signed, as SeaweedFS is plain http)",
    )
    args = parser.parse_args()
    why = unavailable()
    if why:
        print(f"the multi-host soak cannot run here: {why}", file=sys.stderr)
        return 2
    if not CORPUS.is_dir():
        print(f"the corpus {CORPUS} is missing", file=sys.stderr)
        return 2
    split = None
    if args.aside_cpus:
        try:
            split = split_cpus(args.aside_cpus)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    removed = cleanup_stale()
    if removed:
        print(f"removed what an earlier run left: {', '.join(removed)}", file=sys.stderr)
    roles = ["api1", "api2", *(f"worker{i + 1}" for i in range(args.worker_hosts)), "bus1", "bus2"]
    code = 1
    network = build_network(roles)
    try:
        # Before any thread starts: from here this process (and every thread it starts)
        # is in the clients' namespace, whose only route is the hosts' /24.
        enter_netns(network.hosts["clients"].netns)
        run = multihost(
            network,
            n=args.n,
            clients=args.clients,
            chaos_on=not args.clean,
            fast=args.fast,
            workers=args.worker_hosts,
            split=split,
            sign_payload=args.s3_sign_payload,
        )
        try:
            import uvloop

            code = uvloop.run(run)
        except ImportError:
            code = asyncio.run(run)
    finally:
        kept = network.close(keep_logs=code != 0)
        if kept is not None:
            print(f"  logs kept in {kept}", file=sys.stderr)
    return code


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM too: the finally blocks remove every namespace and process.
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
