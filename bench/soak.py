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
import contextlib
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench.affinity import pin_tree, split_cpus  # noqa: E402
from bench.bare_pipeline import BARE_SAMPLE, Layout, bare_rate, bare_sample  # noqa: E402
from bench.procstat import (  # noqa: E402
    cpu_seconds,
    cpu_shares,
    cpu_times,
    rss_kb,
    tree_cpu_seconds,
)
from bench.stats import percentile  # noqa: E402
from filmstrip.catalog.sqlite import SqliteCatalog  # noqa: E402
from filmstrip.embedded.processes import stop_process  # noqa: E402
from filmstrip.embedded.redis_server import RedisServer, free_port  # noqa: E402
from services.cli.tokens import issue_token  # noqa: E402
from tests.support.moto_server import MotoServer  # noqa: E402
from tests.support.tcp_proxy import TcpProxy  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
BUCKET = "soak"
WORKERS = 2


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Pipeline threads per worker: the workers share the cores (default: the machine's)."""
    return max(1, (cores or os.cpu_count() or 1) // workers)


# --- photos -------------------------------------------------------------------------------


def unique_variant(data: bytes, tag: str) -> bytes:
    """The same picture with a marker that makes its bytes (and SHA-256) unique: a JPEG COM
    segment after SOI, or a PNG tEXt chunk after IHDR. Decoders ignore both."""
    marker = tag.encode()
    if data[:2] == b"\xff\xd8":
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(marker) + 2) + marker + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        body = b"tEXt" + b"soak\0" + marker
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        ihdr_end = 8 + 8 + 13 + 4
        return data[:ihdr_end] + chunk + data[ihdr_end:]
    raise ValueError("only JPEG and PNG sources can be varied")


def corpus_sources() -> tuple[list[bytes], list[bytes]]:
    """(good photos that can be varied, hostile files that must fail as DATA)."""
    good = [
        p.read_bytes()
        for p in sorted((CORPUS / "real").iterdir())
        if p.suffix.lower() in (".jpg", ".png") and p.stat().st_size < 1_500_000
    ]
    bad = [
        (CORPUS / "bad" / name).read_bytes()
        for name in ("truncated_jpeg.jpg", "missing-sos.jpg", "broken_data_stream.png")
    ]
    return good, bad


# --- the cluster --------------------------------------------------------------------------


@dataclass
class Proc:
    role: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    peak_rss_kb: int = 0
    cpu_s_before: float = 0.0  # CPU of earlier incarnations (a killed worker's)
    loop_cpu_s_before: float = 0.0  # the same, of the main (event-loop) thread alone

    def start(self) -> None:
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"), start_new_session=True,
        )  # fmt: skip

    def sample_rss(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.peak_rss_kb = max(self.peak_rss_kb, rss_kb(self.popen.pid)[1])

    def cpu_s(self) -> float:
        """CPU seconds used by this role slot, across restarts."""
        return self.cpu_s_before + ((cpu_seconds(self.popen.pid) or 0.0) if self.popen else 0.0)

    def loop_cpu_s(self) -> float:
        """CPU seconds of the main thread, which runs the event loop, across restarts."""
        pid = self.popen.pid if self.popen else None
        return self.loop_cpu_s_before + ((cpu_seconds(pid, tid=pid) or 0.0) if pid else 0.0)

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.sample_rss()
            self.cpu_s_before += cpu_seconds(self.popen.pid) or 0.0
            self.loop_cpu_s_before += cpu_seconds(self.popen.pid, tid=self.popen.pid) or 0.0
            self.popen.kill()
            self.popen.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.popen and self.popen.poll() is None:
            self.sample_rss()
            stop_process(self.popen, timeout)


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
    base = {k: v for k, v in os.environ.items() if not k.startswith("FILMSTRIP_")}
    base.update(
        PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}",
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
        FILMSTRIP_JOB_BACKOFF_MS="500",
        FILMSTRIP_JOB_ATTEMPTS="8",
        FILMSTRIP_VISIBILITY_TIMEOUT_MS="5000",
        FILMSTRIP_MAX_STALLED="5",
        FILMSTRIP_SHUTDOWN_GRACE_S="5",
        FILMSTRIP_QUEUE_MAX_WAITING="100000",
        FILMSTRIP_SIGNING_SECRET="soak-secret",
        # The workers share the machine's cores: each gets its part, as a deployment of
        # several workers per host would set it (the default, one per CPU, suits one).
        FILMSTRIP_PIPELINE_THREADS=str(worker_threads(workers, len(cpus) if cpus else None)),
    )
    if chaos:
        base.update(
            FILMSTRIP_RECONCILE_INTERVAL_S="5",
            FILMSTRIP_STUCK_AFTER_S="30",
            # A put that S3 stored but whose answer the outage cut leaves a blob without a
            # row; the api's reconciler removes such orphans after this grace. A clean run
            # keeps the defaults: a sweep lists the whole store, which is not free.
            FILMSTRIP_ORPHAN_GRACE_S="15",
            FILMSTRIP_ORPHAN_SWEEP_INTERVAL_S="5",
        )
    cmd = [sys.executable, "-m", "services.cli.main"]
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
    for i in range(apis):
        port = free_port()
        env = {**base, "FILMSTRIP_API_PORT": str(port)}
        cluster.procs.append(Proc("api", [*cmd, "api"], env, logs / f"api{i}.log"))
        cluster.api_urls.append(f"http://127.0.0.1:{port}")
    for i in range(workers):
        cluster.procs.append(Proc("worker", [*cmd, "worker"], base, logs / f"worker{i}.log"))
    cluster.procs.append(Proc("bus", [*cmd, "bus"], base, logs / "bus.log"))
    for proc in cluster.procs:
        proc.start()
    # At once, before they start their threads; again once they are ready (wait_ready).
    cluster.pin()
    return cluster


async def wait_ready(cluster: Cluster, limit_s: float = 60) -> None:
    bus_http = cluster.bus_url.replace("ws://", "http://").removesuffix("/ws")
    urls = [f"{u}/readyz" for u in cluster.api_urls] + [f"{bus_http}/healthz"]
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            ok = 0
            for url in urls:
                try:
                    async with http.get(url) as resp:
                        ok += resp.status == 200
                except aiohttp.ClientError:
                    pass
            if ok == len(urls):
                cluster.pin()  # the threads they started since
                return
            await asyncio.sleep(0.3)
    raise RuntimeError("cluster did not become ready")


async def stop_cluster(cluster: Cluster) -> None:
    for proc in cluster.procs:
        await asyncio.to_thread(proc.stop)
    cluster.redis.stop()
    if cluster.s3_proxy is not None:
        await cluster.s3_proxy.close()
    if cluster.s3 is not None:
        cluster.s3.stop()


# --- clients --------------------------------------------------------------------------------


@dataclass
class ClientStats:
    accepted: dict[str, float] = field(default_factory=dict)  # photo_id -> upload start
    expected_bad: set[str] = field(default_factory=set)
    completion: dict[str, float] = field(default_factory=dict)  # photo_id -> event time
    completion_events: dict[str, int] = field(default_factory=dict)
    upload_latency: list[float] = field(default_factory=list)
    refused: int = 0
    reconnects: int = 0
    drops: dict[str, int] = field(default_factory=dict)


async def run_client(
    idx: int,
    token: str,
    photos: list[tuple[bytes, bool]],
    cluster: Cluster,
    stats: ClientStats,
    uploads_done: asyncio.Event,
    all_done: asyncio.Event,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        listener = asyncio.create_task(_listen(token, cluster, stats, all_done))
        rng = random.Random(idx)
        for data, is_bad in photos:
            for attempt in range(60):
                url = rng.choice(cluster.api_urls)
                form = aiohttp.FormData()
                form.add_field("file", data, filename="p.jpg")
                started = time.monotonic()
                try:
                    async with http.post(f"{url}/v1/photos", data=form) as resp:
                        body = await resp.json(content_type=None)
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status, body = 0, {}
                if status in (200, 201):
                    stats.upload_latency.append(time.monotonic() - started)
                    stats.accepted.setdefault(body["photo_id"], started)
                    if is_bad:
                        stats.expected_bad.add(body["photo_id"])
                    break
                stats.refused += 1
                await asyncio.sleep(min(2.0, 0.1 * (attempt + 1)))
        uploads_done.set()
        await listener


async def _listen(token: str, cluster: Cluster, stats: ClientStats, done: asyncio.Event) -> None:
    """Hold a WebSocket; reconnect and resume from the last event id after any drop."""
    last_id: str | None = None
    async with aiohttp.ClientSession() as session:
        while not done.is_set():
            try:
                async with session.ws_connect(cluster.bus_url, heartbeat=10) as ws:
                    await ws.send_json({"type": "identify", "token": token})
                    if last_id:
                        await ws.send_json({"type": "resume", "last_event_id": last_id})
                    while not done.is_set():
                        try:
                            frame = await ws.receive(timeout=1)
                        except TimeoutError:
                            continue
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            why = f"{frame.type.name} {ws.close_code}"
                            stats.drops[why] = stats.drops.get(why, 0) + 1
                            break
                        msg = orjson.loads(frame.data)
                        if msg.get("type") == "identified" and last_id is None:
                            # Nothing seen yet: after a drop, resume from where this
                            # socket joined, or what was published meanwhile is missed.
                            last_id = msg["last_event_id"]
                        if "event" not in msg:
                            continue
                        last_id = msg["id"]
                        if msg["event"] in (
                            "photo.processing.completed",
                            "photo.processing.failed",
                        ):
                            pid = msg["photo_id"]
                            stats.completion.setdefault(pid, time.monotonic())
                            stats.completion_events[pid] = stats.completion_events.get(pid, 0) + 1
            except (aiohttp.ClientError, OSError) as exc:
                why = type(exc).__name__
                stats.drops[why] = stats.drops.get(why, 0) + 1
            if not done.is_set():
                stats.reconnects += 1
                await asyncio.sleep(0.5)


async def report_progress(
    stats: list[ClientStats],
    uploads_done: list[asyncio.Event],
    all_done: asyncio.Event,
    n: int,
    *,
    every_s: float,
) -> None:
    """A line on stderr every ``every_s``: how far the run is, and which photos still
    lack their completion event (what a stuck run is waiting for)."""
    t0 = time.monotonic()
    while not all_done.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await all_done.wait()
        accepted = sum(len(s.accepted) for s in stats)
        waiting = [p for s in stats for p in s.accepted if p not in s.completion]
        uploading = sum(not e.is_set() for e in uploads_done)
        print(
            f"[soak {time.monotonic() - t0:5.0f} s] accepted {accepted}/{n},"
            f" {accepted - len(waiting)} with their completion event,"
            f" {uploading} clients still uploading; waiting for {waiting[:5]}",
            file=sys.stderr,
            flush=True,
        )


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


# --- verification ---------------------------------------------------------------------------


async def wait_drained(cluster: Cluster, limit_s: float) -> float:
    """When the queue last held no waiting, active or delayed job (monotonic time)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from filmstrip.queue import JobQueue, QueueOptions
    from filmstrip.settings import load_settings

    redis = aioredis.Redis.from_url(cluster.redis.url)
    queue = JobQueue(redis, QueueOptions.from_settings(load_settings({})))
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            try:
                counts = await queue.counts()
            except (OSError, RedisError):
                counts = {"waiting": 1}  # Redis restarting: not drained yet
            if not (counts.get("waiting", 0) + counts.get("active", 0) + counts.get("delayed", 0)):
                break
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()
    return time.monotonic()


async def wait_terminal(catalog: SqliteCatalog, ids: list[str], limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    rows: dict[str, Any] = {}
    while True:
        rows = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" for _ in chunk)
            for row in await catalog._fetchall(
                f"SELECT id, status, error_category, derivatives FROM photos WHERE id IN ({marks})",
                chunk,
            ):
                rows[row[0]] = row
        pending = [i for i in ids if i not in rows or rows[i][1] not in ("completed", "failed")]
        if not pending or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1.0)


async def verify(
    cluster: Cluster, stats: list[ClientStats], *, limit_s: float
) -> tuple[dict[str, Any], list[str]]:
    import redis.asyncio as aioredis

    from filmstrip.blobs import open_blob_store
    from filmstrip.queue import JobQueue, QueueOptions
    from filmstrip.settings import load_settings

    problems: list[str] = []
    catalog = SqliteCatalog(str(cluster.data / "filmstrip.db"))
    await catalog.connect()
    accepted = {pid for s in stats for pid in s.accepted}
    bad = {pid for s in stats for pid in s.expected_bad}
    rows = await wait_terminal(catalog, sorted(accepted), limit_s)

    lost = [p for p in accepted if p not in rows]
    stuck = [p for p in accepted if p in rows and rows[p][1] not in ("completed", "failed")]
    completed = [p for p in accepted if p in rows and rows[p][1] == "completed"]
    failed_by: dict[str, int] = {}
    for p in accepted:
        if p in rows and rows[p][1] == "failed":
            failed_by[rows[p][2] or "?"] = failed_by.get(rows[p][2] or "?", 0) + 1
            if p not in bad:
                problems.append(f"good photo {p} failed ({rows[p][2]})")
    for p in bad:
        if p in rows and rows[p][1] == "completed":
            problems.append(f"hostile file {p} completed")
    if lost:
        problems.append(f"{len(lost)} accepted uploads have no photo row")
    if stuck:
        problems.append(f"{len(stuck)} photos stuck: {stuck[:5]}")
    if set(failed_by) - {"DATA"}:
        problems.append(f"failures that are not DATA: {failed_by}")

    blobs = await open_blob_store(load_settings(cluster.store_env()))
    all_rows = {r[0] for r in await catalog._fetchall("SELECT id FROM photos")}
    # Orphans are legitimate for a moment (an outage can cut the answer to a put that S3
    # stored); the reconciler must remove them within its grace + interval.
    swept_wait = time.monotonic() + 15 + 5 + 10
    first_orphans: set[str] | None = None
    while True:
        by_photo: dict[str, set[str]] = {}
        async for info in blobs.list(""):
            parts = info.key.split("/")
            if len(parts) >= 2:
                by_photo.setdefault(parts[1], set()).add(info.key)
        orphans = [p for p in by_photo if p not in all_rows]
        if first_orphans is None:
            first_orphans = set(orphans)
        if not orphans or time.monotonic() > swept_wait:
            break
        await asyncio.sleep(1.0)
    await blobs.close()
    if orphans:
        problems.append(f"{len(orphans)} photos' blobs have no row (orphans not swept)")
    wrong_derivatives = 0
    for p in completed:
        expected = {d["key"] for d in orjson.loads(rows[p][3] or "[]")}
        present = {k for k in by_photo.get(p, set()) if k.startswith("derivatives/")}
        if expected != present or f"originals/{p}" not in by_photo.get(p, set()):
            wrong_derivatives += 1
    if wrong_derivatives:
        problems.append(f"{wrong_derivatives} completed photos lack exactly their derivatives")

    missed = sum(1 for s in stats for p in s.accepted if p not in s.completion)
    dup_events = sum(max(0, n - 1) for s in stats for n in s.completion_events.values())
    if missed:
        problems.append(f"{missed} completion events never reached their client")

    redis = aioredis.Redis.from_url(cluster.redis.url)
    queue = JobQueue(redis, QueueOptions.from_settings(load_settings({})))
    dead = await queue.list_jobs("failed", offset=0, limit=10_000)
    dead_categories = {j.error.category for j in dead if getattr(j, "error", None)}
    if dead_categories - {"DATA"}:
        problems.append(f"dead-letter holds non-DATA failures: {dead_categories}")
    await redis.aclose()
    await catalog.close()

    e2e = [s.completion[p] - s.accepted[p] for s in stats for p in s.accepted if p in s.completion]
    upload = [x for s in stats for x in s.upload_latency]
    report: dict[str, Any] = {
        "uploads accepted": len(accepted),
        "completed": len(completed),
        "failed (by category)": ", ".join(f"{k} {v}" for k, v in sorted(failed_by.items())) or "0",
        "lost (must be 0)": len(lost) + len(stuck),
        "duplicates (must be 0)": dup_events,
        "events missed (must be 0)": missed,
        "orphan blobs left (must be 0)": len(orphans),
        "orphan blobs swept by the reconciler": len(first_orphans or ()),
        "refused then retried (503/conn)": sum(s.refused for s in stats),
        "socket reconnects": sum(s.reconnects for s in stats),
        "socket drops by cause": ", ".join(
            f"{k} {v}" for k, v in sorted(_merge([s.drops for s in stats]).items())
        )
        or "none",
        "upload latency p50 / p99": _ms_pair(upload),
        "end-to-end p50 / p99": _ms_pair(e2e),
        "_e2e_span": (min(s.accepted[p] for s in stats for p in s.accepted), max(e2e_end(stats))),
    }
    return report, problems


def _merge(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _ms_pair(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:.0f} / {percentile(values, 0.99) * 1000:.0f} ms"


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


def e2e_end(stats: list[ClientStats]) -> list[float]:
    return [t for s in stats for t in s.completion.values()] or [time.monotonic()]


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
    rng = random.Random(1)
    plans: list[list[tuple[bytes, bool]]] = [[] for _ in range(clients)]
    uses = [0] * len(good)  # how often each source photo is uploaded
    for i in range(n):
        client = i % clients
        if chaos_on and i % 50 == 7:
            plans[client].append((bad[i % len(bad)], True))
        else:
            source = rng.randrange(len(good))
            uses[source] += 1
            plans[client].append((unique_variant(good[source], f"soak-{i}"), False))

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
    if not chaos_on:
        sample = bare_sample(good, uses, BARE_SAMPLE)
        for layout in layouts:
            bare_before[layout] = await asyncio.to_thread(bare_rate, sample, layout, cpus=cpus)
    cluster = await start_cluster(
        data, blobs=blobs, chaos=chaos_on, cpus=cpus, aside=aside, s3_endpoint=s3_endpoint
    )
    chaos_log: list[str] = []
    code = 1
    try:
        await wait_ready(cluster)
        stats = [ClientStats() for _ in range(clients)]
        all_done = asyncio.Event()
        uploads_done = [asyncio.Event() for _ in range(clients)]
        stop_chaos = asyncio.Event()

        def progress() -> float:
            return sum(len(s.accepted) for s in stats) / n

        chaos_task = (
            asyncio.create_task(chaos(cluster, progress, stop_chaos, fast=fast, log=chaos_log))
            if chaos_on
            else None
        )

        async def sampler() -> None:
            while not all_done.is_set():
                for proc in cluster.procs:
                    proc.sample_rss()
                await asyncio.sleep(0.5)

        sampling = asyncio.create_task(sampler())
        reporting = asyncio.create_task(
            report_progress(stats, uploads_done, all_done, n, every_s=5.0 if fast else 15.0)
        )
        cpu_at_start = cpu_by_role(cluster)
        loop_cpu_at_start = sum(p.loop_cpu_s() for p in cluster.role("worker"))
        ticks_at_start = cpu_times(cpus)
        started = time.monotonic()
        runners = [
            asyncio.create_task(
                run_client(i, tokens[i], plans[i], cluster, stats[i], uploads_done[i], all_done)
            )
            for i in range(clients)
        ]
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
        drained_at = await wait_drained(cluster, limit_s=max(5.0, deadline - time.monotonic()))
        busy, idle, stolen = cpu_shares(ticks_at_start, cpu_times(cpus))
        stop_chaos.set()
        if chaos_task:
            await chaos_task
        elapsed = time.monotonic() - started
        cpu_used = {k: v - cpu_at_start.get(k, 0.0) for k, v in cpu_by_role(cluster).items()}
        loop_cpu = sum(p.loop_cpu_s() for p in cluster.role("worker")) - loop_cpu_at_start
        report, problems = await verify(cluster, stats, limit_s=20 if fast else 60)
        all_done.set()
        await asyncio.gather(*runners, sampling, reporting)

        span = report.pop("_e2e_span")
        rate = report["completed"] / max(1e-9, max(span[1], drained_at) - span[0])
        peak = {}
        for proc in cluster.procs:
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
        report["cores busy / idle / stolen during the run"] = (
            f"{busy:.0%} / {idle:.0%} / {stolen:.0%}"
        )
        if not chaos_on:
            # Each layout runs before the system and again after it (this machine's speed
            # drifts by several percent over a run); the faster layout's mean is the bare
            # rate the system is held to.
            means: dict[Layout, tuple[float, float]] = {}
            afters: dict[Layout, float] = {}
            for layout in layouts:
                after = await asyncio.to_thread(bare_rate, sample, layout, cpus=cpus)
                before = bare_before[layout]
                afters[layout] = after[0]
                means[layout] = ((before[0] + after[0]) / 2, (before[1] + after[1]) / 2)
            best = max(layouts, key=lambda layout: means[layout][0])
            bare, bare_cpu = means[best]
            others = "; ".join(
                f"{layout}: {means[layout][0]:.1f}" for layout in layouts if layout != best
            )
            report["bare pipeline photos/s (same photo mix, faster layout)"] = (
                f"{bare:.1f} ({best} threads; before {bare_before[best][0]:.1f},"
                f" after {afters[best]:.1f}; {others})"
            )
            report["ratio end-to-end / bare (target >= 0.85)"] = f"{rate / bare:.2f}"
            # The same comparison in CPU, counting only the system's own processes: the
            # soak's clients and moto (an S3 server in Python; a real S3 is off the box)
            # share the two cores in the run above but are not Filmstrip.
            own = sum(v for k, v in cpu_used.items() if k in ("api", "worker", "bus", "redis"))
            per_photo = own / max(1, report["completed"])
            report["CPU ms per photo: bare / api+worker+bus+redis"] = (
                f"{bare_cpu * 1000:.0f} / {per_photo * 1000:.0f} (ratio {bare_cpu / per_photo:.2f})"
            )
            # Where the run's CPU went beyond the stages themselves, per photo, beside what a
            # run at 0.85 of the bare rate could spend with every core busy all the time.
            # The worker's event loop (blob client, Redis, catalog, events, logs) runs on
            # its main thread; its other threads run the stages.
            done = max(1, report["completed"])
            budget = cores * 1000 / (0.85 * bare) - bare_cpu * 1000
            beyond = {k: v / done * 1000 for k, v in cpu_used.items()}
            beyond["worker"] -= bare_cpu * 1000
            report["CPU ms per photo beyond the bare stages"] = ", ".join(
                f"{k} {v:.1f}" for k, v in sorted(beyond.items(), key=lambda kv: -kv[1])
            ) + (
                f" (worker event loop {loop_cpu / done * 1000:.1f});"
                f" budget at 0.85 on {cores} cores: {budget:.1f}"
            )
        print(
            f"\nFilmstrip soak: {n} uploads, {clients} clients, "
            f"chaos {'on' if chaos_on else 'off'}, "
            f"blobs {cluster.store_name()}"
        )
        if cpus is not None:
            print(
                f"  CPUs {cpus}: the system and the bare pipeline;"
                f" CPUs {aside}: {'moto and ' if cluster.s3 is not None else ''}the soak's clients"
            )
        for line in chaos_log:
            print(f"  chaos {line}")
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"  {key:<{width}}  {value}")
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        print("  RESULT: " + ("ok" if not problems else "GUARANTEE BROKEN"))
        code = 0 if not problems else 1
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
