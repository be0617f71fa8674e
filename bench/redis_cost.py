"""What one photo costs the shared Redis: commands, Redis CPU and memory per photo, by role.

All roles share one Redis, so its one thread is the ceiling for every host added. This runs
an api, a worker and a bus (the product's own commands, default settings, files as blobs,
an append-only Redis) and uploads ``--photos`` distinct 1600x1200 JPEGs from one client
that holds a WebSocket on the bus, in two phases read from ``INFO commandstats`` and
``INFO cpu``:

- api: the worker stopped, the photos are uploaded (the bus relays the api's events);
- worker: the worker started, until every job (ready and deferred) is done.

It prints per photo: commands (those run inside scripts counted too, as Redis counts them),
the Redis main thread's CPU, the commands that cost most; then the memory still held per
photo once all is done, by kind of key, and what bounds each kind. The target (#26) is
<= 0.4 ms of Redis CPU per photo: >= 2,500 photos/s per Redis.

    python -m bench.redis_cost [--photos 50] [--upload-concurrency 4] [--code DIR] [--requests]

``--requests`` also lists each phase's requests per photo by role and kind (script calls by
script, commands by their key's shape) with the Redis time of each, from the slow log set to
log every command; ``--inner`` adds the commands each script ran, from MONITOR, which costs
Redis much CPU, so its times and CPU figures are then far off.

``--code DIR`` runs the roles from another checkout (an older one, for a before/after in one
sitting: run the two alternately).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pyvips
import redis.asyncio as aioredis

from bench.soak_clients import ClientStats, Endpoints, listen
from bench.soak_photos import CORPUS, unique_variant
from filmstrip.catalog.sqlite import SqliteCatalog
from filmstrip.embedded.redis_server import RedisServer, free_port
from filmstrip.embedded.supervisor import Role, Supervisor, env_without_filmstrip
from filmstrip.services.cli.tokens import issue_token
from filmstrip.tasks import cancel_and_wait

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 0.4
SOURCE = CORPUS / "real" / "Landscape_0.jpg"

# Keys by what they hold (the queue's under {photo-processing}, a client's under
# {client:<id>}); the first pattern that matches names the kind.
KINDS = [
    ("queue: job hashes", re.compile(r"^\{photo-processing\}:job:")),
    ("queue: completed/failed sets", re.compile(r"^\{photo-processing\}:(completed|failed)$")),
    ("queue: stats buckets", re.compile(r"^\{photo-processing\}:stats:")),
    ("queue: band streams", re.compile(r"^\{photo-processing\}:p\d+$")),
    ("queue: other", re.compile(r"^\{photo-processing\}")),
    ("events: replay streams", re.compile(r"^filmstrip:\{client:[^}]*\}:events$")),
    ("events: once-keys", re.compile(r"^filmstrip:\{client:[^}]*\}:once:")),
    ("stage stats", re.compile(r"^filmstrip:stats:")),
]


MONITOR_RE = re.compile(rb"^[\d.]+ \[\d+ ([^\]]*)\] (.*)$", re.S)
ARG_RE = re.compile(rb'"((?:[^"\\]|\\.)*)"')
ID_RE = re.compile(r"[A-Za-z0-9_-]{12,}|\d+")


def script_names() -> dict[str, str]:
    """The sha of each script the roles run (this checkout's), by name."""
    import hashlib

    from filmstrip.events import publisher
    from filmstrip.queue import lua

    bodies = {name: lua.PRELUDE + getattr(lua, name) for name in (
        "ADD", "STEP", "ACTIVATE", "RECLAIM", "CANCEL", "RETRY_FAILED", "REMOVE_FAILED",
        "PROGRESS", "COUNTS")}  # fmt: skip
    bodies["PUBLISH"] = publisher.PUBLISH_SCRIPT
    return {hashlib.sha1(b.encode()).hexdigest(): name for name, b in bodies.items()}


def shape(key: bytes) -> str:
    """A key with its ids blanked: the kind of key a command touched."""
    return ID_RE.sub("*", key.decode(errors="replace"))


def label(args: list[bytes], names: dict[str, str]) -> str:
    """A request by kind: a script call by the script's name, a command by its key's shape."""
    cmd = args[0].decode().upper()
    if cmd in ("EVALSHA", "EVAL") and len(args) > 2:
        sha = args[1].decode()
        what = "script " + names.get(sha, sha[:8])
        return what + (f" ({shape(args[3])})" if int(args[2]) else "")
    return cmd + (f" {shape(args[1])}" if len(args) > 1 else "")


class Requests:
    """What MONITOR and the slow log (at 0 µs) saw in each phase: requests by role and kind,
    the Redis time of each (the slow log's), and the commands each script call ran."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.phase = ""
        self.roles: dict[int, str] = {}  # client port -> role
        self.top: Counter[tuple[str, str, str]] = Counter()
        self.usec: Counter[tuple[str, str, str]] = Counter()
        self.logged: Counter[tuple[str, str, str]] = Counter()
        self.inner: Counter[tuple[str, str, str, str]] = Counter()
        self.names = script_names()

    def role(self, port: int) -> str:
        if port not in self.roles:
            for role in self.supervisor.names:
                proc = self.supervisor.process(role)
                if proc is None or proc.poll() is not None:
                    continue
                with contextlib.suppress(psutil.Error):
                    for c in psutil.Process(proc.pid).net_connections("tcp"):
                        if c.raddr:
                            self.roles[c.laddr.port] = role
        return self.roles.setdefault(port, "bench")

    async def start(self, redis: aioredis.Redis, phase: str) -> None:
        await redis.config_set("slowlog-max-len", 1_000_000)
        await redis.config_set("slowlog-log-slower-than", 0)
        await redis.slowlog_reset()
        self.phase = phase

    async def end(self, redis: aioredis.Redis) -> None:
        phase, self.phase = self.phase, ""
        await redis.config_set("slowlog-log-slower-than", 10_000)
        for entry in await redis.execute_command("SLOWLOG", "GET", "-1"):
            _id, _t, usec, args, client = entry[:5]
            port = int(client.rsplit(b":", 1)[1]) if b":" in client else 0
            what = (phase, self.role(port), label(args, self.names))
            self.usec[what] += usec
            self.logged[what] += 1
        await redis.slowlog_reset()

    async def run(self, url: str) -> None:
        redis = aioredis.Redis.from_url(url)
        last: tuple[str, str, str] | None = None
        try:
            async with redis.monitor() as monitor:
                assert monitor.connection is not None
                while True:
                    line = await monitor.connection.read_response()
                    m = MONITOR_RE.match(line)
                    if m is None or not self.phase:
                        continue
                    client, args = m.group(1), ARG_RE.findall(m.group(2))
                    if client == b"lua":
                        if last is not None:
                            self.inner[(*last, args[0].decode().upper())] += 1
                        continue
                    port = int(client.rsplit(b":", 1)[1]) if b":" in client else 0
                    last = (self.phase, self.role(port), label(args, self.names))
                    self.top[last] += 1
        finally:
            await redis.aclose()

    def report(self, photos: int) -> None:
        print("\nrequests per photo by phase and role (a pipeline's commands one by one), µs of "
              "Redis time per photo (slow log), and the commands a script ran inside")  # fmt: skip
        for (phase, role, what), n in sorted((self.top or self.logged).items()):
            if role == "bench":
                continue
            usec = self.usec[(phase, role, what)] / photos
            print(f"    {phase:7} {role:7} {n / photos:6.2f} {usec:7.1f} µs  {what}")
            inner = [f"{c} {k / n:.1f}" for (*top, c), k in self.inner.items()
                     if tuple(top) == (phase, role, what)]  # fmt: skip
            if inner:
                print(f"{'':35}each: {', '.join(inner)}")


def photo_bytes() -> bytes:
    """A 1600x1200 JPEG (quality 85) made from a corpus landscape."""
    image = pyvips.Image.thumbnail(str(SOURCE), 1600, height=1200, crop="centre")
    data: bytes = image.jpegsave_buffer(Q=85)
    return data


async def snapshot(redis: aioredis.Redis) -> dict[str, Any]:
    stats = await redis.info("commandstats")
    cpu = await redis.info("cpu")
    server_stats = await redis.info("stats")
    user = cpu.get("used_cpu_user_main_thread", cpu["used_cpu_user"])
    sys_ = cpu.get("used_cpu_sys_main_thread", cpu["used_cpu_sys"])
    return {
        "calls": {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()},
        "usec": {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()},
        "cpu_s": float(user) + float(sys_),
        # Socket reads: about one per request (a round trip), however many commands it ran.
        "reads": int(server_stats["total_reads_processed"]),
        "t": time.monotonic(),
    }


def delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    # The bench's own INFO calls are left out of what it reports.
    skip = {"info", "config|resetstat", "config"}
    calls = Counter({k: v - a["calls"].get(k, 0) for k, v in b["calls"].items() if k not in skip})
    usec = Counter({k: v - a["usec"].get(k, 0) for k, v in b["usec"].items() if k not in skip})
    return {
        "calls": +calls,
        "usec": +usec,
        "cpu_s": b["cpu_s"] - a["cpu_s"],
        "reads": b["reads"] - a["reads"] - 3,  # the snapshot's own three
        "s": b["t"] - a["t"],
    }


async def memory_by_kind(redis: aioredis.Redis) -> Counter[str]:
    kinds: Counter[str] = Counter()
    async for key in redis.scan_iter(count=1000):
        name = key.decode()
        kind = next((k for k, pattern in KINDS if pattern.match(name)), "other")
        kinds[kind] += int(await redis.memory_usage(key, samples=0) or 0)
    return kinds


async def upload_all(api: str, token: str, photos: list[bytes], concurrency: int) -> list[str]:
    ids: list[str] = []
    todo = iter(photos)

    async def uploader(http: aiohttp.ClientSession) -> None:
        for data in todo:
            form = aiohttp.FormData()
            form.add_field("file", data, filename="p.jpg", content_type="image/jpeg")
            async with http.post(f"{api}/v1/photos", data=form) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 201:
                    raise RuntimeError(f"upload answered {resp.status}: {body}")
                ids.append(body["photo_id"])

    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        await asyncio.gather(*(uploader(http) for _ in range(concurrency)))
    return ids


POLL = {"xlen": 10, "zcard": 1}  # the commands of one wait_drained poll


async def wait_drained(redis: aioredis.Redis, limit_s: float = 300) -> int:
    """Until no job of the queue waits, runs or is delayed; how many polls it took (their
    commands are taken out of the worker's figures)."""
    deadline = time.monotonic() + limit_s
    streams = [f"{{photo-processing}}:p{band}" for band in range(1, 11)]
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        async with redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xlen(stream)
            pipe.zcard("{photo-processing}:delayed")
            counts = await pipe.execute()
        if not sum(counts):
            return polls
        await asyncio.sleep(0.5)
    raise TimeoutError("the queue did not drain")


def without_idle(d: dict[str, Any], idle: dict[str, Any], polls: int = 0) -> dict[str, Any]:
    """``d`` less the Redis CPU an idle system spends over as long (its cron, the AOF's
    fsync) and less the bench's own polls."""
    calls, usec = Counter(d["calls"]), Counter(d["usec"])
    for cmd, per_poll in POLL.items():
        if calls[cmd]:
            usec[cmd] -= round(usec[cmd] * min(polls * per_poll / calls[cmd], 1))
            calls[cmd] -= polls * per_poll
    cpu_s = d["cpu_s"] - idle["cpu_s"] / idle["s"] * d["s"]
    reads = d["reads"] - polls
    return {"calls": +calls, "usec": +usec, "cpu_s": max(cpu_s, 0.0), "reads": reads, "s": d["s"]}


def report(name: str, d: dict[str, Any], photos: int) -> float:
    total_calls = sum(d["calls"].values())
    cpu_ms = d["cpu_s"] * 1000 / photos
    print(f"\n{name}: {d['reads'] / photos:.1f} requests, {total_calls / photos:.1f} commands, "
          f"{cpu_ms:.3f} ms Redis CPU per photo")  # fmt: skip
    for cmd, usec in d["usec"].most_common(12):
        line = f"    {cmd:22} {d['calls'][cmd] / photos:7.2f} calls {usec / photos / 1000:7.3f} ms"
        if cmd.startswith("evalsha"):
            line += "  (a script's time includes the commands it runs)"
        print(line)
    return cpu_ms


async def run(
    photos_n: int, concurrency: int, code: Path, requests: bool = False, inner: bool = False
) -> None:
    data = Path(tempfile.mkdtemp(prefix="filmstrip-redis-cost-"))
    redis_server = RedisServer(data / "redis", appendonly=True)
    redis_server.start()
    catalog = SqliteCatalog(str(data / "filmstrip.db"))
    await catalog.connect()
    _client, token = await issue_token(catalog, "redis-cost", admin=False)
    await catalog.close()
    api_port, bus_port = free_port(), free_port()
    env = env_without_filmstrip()
    env.update(
        PYTHONPATH=f"{code / 'src'}{os.pathsep}{code}",
        FILMSTRIP_DATA_DIR=str(data),
        FILMSTRIP_REDIS_URL=redis_server.url,
        FILMSTRIP_BLOB_URL=f"file://{data / 'blobs'}",
        FILMSTRIP_API_PORT=str(api_port),
        FILMSTRIP_BUS_PORT=str(bus_port),
        FILMSTRIP_WORKER_METRICS_PORT=str(free_port()),
        FILMSTRIP_SIGNING_SECRET="redis-cost",
    )
    logs = data / "logs"
    logs.mkdir()

    def command(role: str) -> list[str]:
        # Checkouts from before the roles were installed as filmstrip.services.
        main = "filmstrip.services" if (code / "src/filmstrip/services").exists() else "services"
        return [sys.executable, "-m", f"{main}.cli.main", role]

    supervisor = Supervisor(
        [
            # cwd too: ``python -m`` puts it first on the path (services, protocols).
            Role(
                "api",
                command("api"),
                env,
                f"http://127.0.0.1:{api_port}/readyz",
                logs / "api",
                code,
            ),
            Role("worker", command("worker"), env, None, logs / "worker", code),
            Role(
                "bus",
                command("bus"),
                env,
                f"http://127.0.0.1:{bus_port}/healthz",
                logs / "bus",
                code,
            ),
        ]
    )
    redis = aioredis.Redis.from_url(redis_server.url)
    done = asyncio.Event()
    stats = ClientStats()
    listener: asyncio.Task[None] | None = None
    watch = Requests(supervisor) if requests else None
    monitor = asyncio.create_task(watch.run(redis_server.url)) if inner and watch else None
    try:
        supervisor.start("api", "bus")
        await asyncio.to_thread(supervisor.wait_ready, "api", "bus", timeout=60)
        endpoints = Endpoints([f"http://127.0.0.1:{api_port}"], [f"ws://127.0.0.1:{bus_port}/ws"])
        listener = asyncio.create_task(listen(token, endpoints, stats, done))
        base = photo_bytes()
        photos = [
            unique_variant(base, f"redis-cost-{os.urandom(8).hex()}") for _ in range(photos_n)
        ]
        await asyncio.sleep(1.0)  # the socket identified, the roles idle

        idle0 = await snapshot(redis)
        await asyncio.sleep(5.0)
        idle = delta(idle0, await snapshot(redis))
        mem0 = int((await redis.info("memory"))["used_memory"])

        if watch is not None:
            await watch.start(redis, "api")
        a0 = await snapshot(redis)
        ids = await upload_all(endpoints.api_urls[0], token, photos, concurrency)
        api = without_idle(delta(a0, await snapshot(redis)), idle)

        w0 = await snapshot(redis)
        if watch is not None:
            await watch.end(redis)
            await watch.start(redis, "worker")
        supervisor.start("worker")
        polls = await wait_drained(redis)
        deadline = time.monotonic() + 30
        while len(stats.completion) < len(ids) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        worker = without_idle(delta(w0, await snapshot(redis)), idle, polls)
        if watch is not None:
            await watch.end(redis)
        await asyncio.sleep(0.5)
        mem1 = int((await redis.info("memory"))["used_memory"])
        kinds = await memory_by_kind(redis)

        seen = len(stats.completion)
        print(f"{photos_n} photos of {len(base) // 1024} KB (1600x1200 JPEG), one client, "
              f"uploads {concurrency} at a time; {seen} completion events seen")  # fmt: skip
        idle_calls = sum(idle["calls"].values()) / idle["s"]
        print(f"idle (all roles, before the uploads): {idle_calls:.1f} commands/s, "
              f"{idle['cpu_s'] / idle['s'] * 1000:.2f} ms Redis CPU per s (taken out of the "
              "phases' CPU below, as are the bench's own polls)")  # fmt: skip
        api_ms = report("api phase (api + bus; worker stopped)", api, photos_n)
        worker_ms = report("worker phase (worker + bus; the api idle)", worker, photos_n)
        calls = (sum(api["calls"].values()) + sum(worker["calls"].values())) / photos_n
        requests = (api["reads"] + worker["reads"]) / photos_n
        total_ms = api_ms + worker_ms
        print(f"\nroles' code: {code}")
        print(f"per photo, all roles: {requests:.1f} requests, {calls:.1f} commands, "
              f"{total_ms:.3f} ms Redis CPU "
              f"(target <= {TARGET_MS} ms: {'met' if total_ms <= TARGET_MS else 'NOT met'}), "
              f"so one Redis thread carries ~{1000 / total_ms:,.0f} photos/s")  # fmt: skip
        print(f"memory held per photo once done: {(mem1 - mem0) / photos_n / 1024:.1f} KB "
              "(used_memory after / before)")  # fmt: skip
        for kind, size in kinds.most_common():
            print(f"    {kind:30} {size / photos_n / 1024:7.2f} KB per photo")
        if watch is not None:
            watch.report(photos_n)
    finally:
        if monitor is not None:
            await cancel_and_wait(monitor)
        done.set()
        if listener is not None:
            await asyncio.wait_for(listener, 5)
        await redis.aclose()
        await asyncio.to_thread(supervisor.stop)
        redis_server.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--upload-concurrency", type=int, default=4)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout the roles run")
    parser.add_argument("--requests", action="store_true", help="list requests (slow log)")
    parser.add_argument("--inner", action="store_true", help="and scripts' commands (MONITOR)")
    args = parser.parse_args()
    asyncio.run(run(args.photos, args.upload_concurrency, args.code.resolve(), args.requests,
                    args.inner))  # fmt: skip


if __name__ == "__main__":
    main()
