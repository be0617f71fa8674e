"""Event bus benchmark: delivery latency (publish -> client receipt) at a rising event rate.

N WebSocket clients, each subscribed to its own photo room, receive processing events
published to Redis (EventPublisher's Lua script, pipelined) at rising rates. The same
load runs, in the same run, against Filmstrip's bus and against the seed's stack: Socket.IO
4 with @socket.io/redis-adapter on Node (installed with npm into a temp folder).

    python -m bench.bus_bench                  # 1000 clients, default rate steps
    python -m bench.bus_bench --clients 500 --rates 200,1000,3000 --step-s 3

Both servers see identical Redis messages and identical client code (a minimal Engine.IO
v4 / Socket.IO v5 client for the seed), and run alone with Redis, the publisher and the
client fleet on the same machine. Reports p50/p99 per step, the highest rate whose p99
stays under 100 ms, lost events, and each server's RSS (current and peak).
"""

from __future__ import annotations

# The orchestrator blocks on purpose (starting processes, reading small files) between
# timed phases; nothing it blocks is being measured.
# ruff: noqa: ASYNC220, ASYNC221
import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.procstat import cpu_seconds, rss_kb
from bench.stats import percentile

P99_TARGET_S = 0.100

SOCKETIO_SERVER_JS = r"""
// The seed's stack: Socket.IO 4 + @socket.io/redis-adapter, bridging Redis pub/sub
// events to rooms with the seed's routing.
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const [url, port] = [process.argv[2], Number(process.argv[3])];
const NAMES = {"photo:upload": "upload.event", "photo:processing": "processing.event",
               "photo:completion": "completion.event"};

(async () => {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  const events = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect(), events.connect()]);
  const io = new Server(port, { adapter: createAdapter(pub, sub), serveClient: false });
  io.on("connection", (socket) => {
    socket.on("identify", (clientId) => socket.join("client:" + clientId));
    socket.on("subscribe", (photoId) => socket.join("photo:" + photoId));
  });
  const onMessage = (message, channel) => {
    const i = message.indexOf(" ");
    const ev = JSON.parse(message.slice(i + 1));
    const out = { type: NAMES[channel], id: message.slice(0, i), channel, event: ev.type,
                  photo_id: ev.photo_id, data: ev.data, metadata: ev.metadata,
                  timestamp: ev.timestamp };
    const md = ev.metadata;
    let rooms;
    if (channel === "photo:processing") rooms = ["photo:" + ev.photo_id];
    else if (channel === "photo:completion")
      rooms = ["photo:" + ev.photo_id, "client:" + md.client_id];
    else
      rooms = ["client:" + md.client_id].concat(md.session_id ? ["session:" + md.session_id] : []);
    io.to(rooms).emit(out.type, out);
  };
  await events.subscribe(Object.keys(NAMES), onMessage);
  console.log("LISTENING");
})();
"""

BUS_RUNNER = r"""
import asyncio, signal
from filmstrip.settings import load_settings
from filmstrip.logs import setup_logging
from filmstrip.services.bus.main import serve
async def main():
    settings = load_settings()
    setup_logging("bus", level="WARNING")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await serve(settings, stop)
import os
if os.environ.get("BUS_BENCH_GCSTATS"):  # report collector pauses on exit
    import gc, time, atexit
    pauses = {0: [], 1: [], 2: []}
    started = {}
    big = []
    def _gc_cb(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        else:
            d = time.perf_counter() - started.get("t", 0)
            pauses[info["generation"]].append(d)
            if d > 0.005:
                big.append((time.time(), info["generation"], d))
    gc.callbacks.append(_gc_cb)
    def _report():
        with open(os.environ["BUS_BENCH_GCSTATS"], "w") as f:
            for g, p in pauses.items():
                f.write(f"gen{g}: n={len(p)} max={max(p, default=0)*1000:.1f}ms "
                        f"total={sum(p)*1000:.0f}ms\n")
            for t, g, d in big:
                f.write(f"{t:.2f} gen{g} {d*1000:.1f}ms\n")
    atexit.register(_report)
prof = None
if os.environ.get("BUS_BENCH_PROFILE"):  # cProfile the bus into this file
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
if prof is not None:
    prof.disable()
    prof.dump_stats(os.environ["BUS_BENCH_PROFILE"])
"""


# --- client fleet (a subprocess) ----------------------------------------------------------


async def run_clients(proto: str, url: str, accounts_file: str) -> None:
    """Connect one socket per account, subscribe it to its photo, then record latencies
    until told DONE on stdin; print them as JSON."""
    import aiohttp

    accounts = json.loads(Path(accounts_file).read_text())
    latencies: dict[int, list[float]] = {}
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    sem = asyncio.Semaphore(50)
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    def record(data: dict[str, Any]) -> None:
        now = time.time()
        latencies.setdefault(int(data["step"]), []).append(now - float(data["t"]))

    async def open_filmstrip(acc: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(url, autoping=True)
        await ws.send_str(orjson.dumps({"type": "identify", "token": acc["token"]}).decode())
        assert orjson.loads((await ws.receive()).data)["type"] == "identified"
        await ws.send_str(orjson.dumps({"type": "subscribe", "photo_id": acc["photo"]}).decode())
        assert orjson.loads((await ws.receive()).data)["type"] == "subscribed"
        await ws.send_str('{"type":"ping"}')  # ends the post-identify hold
        assert orjson.loads((await ws.receive()).data)["type"] == "pong"
        return ws

    async def open_socketio(acc: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
        ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
        assert (await ws.receive()).data.startswith("0")  # Engine.IO open
        await ws.send_str("40")  # Socket.IO connect to "/"
        assert (await ws.receive()).data.startswith("40")
        await ws.send_str("42" + json.dumps(["identify", acc["client_id"]]))
        await ws.send_str("42" + json.dumps(["subscribe", acc["photo"]]))
        return ws

    async def read_filmstrip(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                ev = orjson.loads(msg.data)
                if ev["type"] == "processing.event":
                    record(ev["data"])

    async def read_socketio(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            text: str = msg.data
            if text.startswith("42"):
                name, ev = orjson.loads(text[2:])
                if name == "processing.event":
                    record(ev["data"])
            elif text == "2":
                await ws.send_str("3")  # Engine.IO pong

    opener = open_filmstrip if proto == "filmstrip" else open_socketio
    reader = read_filmstrip if proto == "filmstrip" else read_socketio

    async def open_one(acc: dict[str, str]) -> None:
        async with sem:
            sockets.append(await opener(acc))

    await asyncio.gather(*(open_one(a) for a in accounts))
    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    if proto == "socketio":
        await asyncio.sleep(0.5)  # the subscribe emits have no ack
    print(f"READY {len(sockets)}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    closed = sum(1 for ws in sockets if ws.closed)
    print(json.dumps({"latencies": latencies, "closed": closed}), flush=True)
    for t in readers:
        t.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.close(), 5)


# --- orchestration ------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (robust to a noisy, shared machine)."""
    used = cpu_seconds(pid)
    return float("nan") if used is None else used


async def make_accounts(settings: Any, n: int, path: Path) -> None:
    from filmstrip.auth import new_token
    from filmstrip.catalog import PhotoRecord, open_catalog, utcnow

    catalog = await open_catalog(settings)
    accounts = []
    for i in range(n):
        client_id, photo = f"bench{i:05d}", f"photo{i:05d}_{uuid.uuid4().hex[:6]}"
        token, token_hash = new_token()
        await catalog.create_client(client_id, client_id, is_admin=False)
        await catalog.add_token(token_hash, client_id)
        await catalog.insert_photo(
            PhotoRecord(
                id=photo, client_id=client_id, session_id=None, blob_key=f"o/{photo}",
                content_type="image/jpeg", bytes=1, sha256=None, status="processing",
                job_id=f"photo:{photo}", trace_id=uuid.uuid4().hex, uploaded_at=utcnow(),
            ),
            None,
        )  # fmt: skip
        accounts.append({"client_id": client_id, "token": token, "photo": photo})
    await catalog.close()
    path.write_text(json.dumps(accounts))


class BatchPublisher:
    """EventPublisher's exact Redis work (its Lua script: XADD to the client's replay stream
    + PUBLISH), pipelined per tick so one Python process can drive the rates we need."""

    def __init__(self, redis: Any) -> None:
        from filmstrip.events.publisher import PUBLISH_SCRIPT

        self._redis = redis
        self._script = redis.register_script(PUBLISH_SCRIPT)

    async def publish_many(self, events: list[tuple[dict[str, str], int]]) -> None:
        import msgspec

        from filmstrip import keys
        from filmstrip.protocols.events import CHANNEL_PROCESSING, Event, EventMetadata

        min_id = str(int(time.time() * 1000) - 86_400_000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for acc, step in events:
                ev = Event(
                    id="", type="photo.processing.stage.completed", channel=CHANNEL_PROCESSING,
                    photo_id=acc["photo"],
                    data={"photo_id": acc["photo"], "t": time.time(), "step": step,
                          "progress": 50},
                    metadata=EventMetadata(client_id=acc["client_id"], trace_id="b" * 32),
                    timestamp="2026-01-01T00:00:00.000Z",
                )  # fmt: skip
                await self._script(
                    keys=[keys.client_events(acc["client_id"])],
                    args=[CHANNEL_PROCESSING, msgspec.json.encode(ev), 1000, min_id, 86_400_000],
                    client=pipe,
                )
            await pipe.execute()


async def publish_step(
    publisher: BatchPublisher,
    accounts: list[dict[str, str]],
    rate: int,
    seconds: float,
    step: int,
) -> tuple[int, float]:
    """Publish ``rate`` events/s for ``seconds`` (batches every 2 ms); return
    (count, achieved rate)."""
    total = int(rate * seconds)
    start = time.monotonic()
    sent = 0
    pending: set[asyncio.Task[None]] = set()
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        if due > sent and len(pending) < 8:
            batch = [(accounts[i % len(accounts)], step) for i in range(sent, due)]
            task = asyncio.ensure_future(publisher.publish_many(batch))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent = due
        await asyncio.sleep(0.002)
    if pending:
        await asyncio.gather(*pending)
    elapsed = time.monotonic() - start
    return total, total / elapsed


async def run_target(
    name: str,
    server_cmd: list[str],
    server_env: dict[str, str],
    ready: Any,
    client_url: str,
    accounts_file: Path,
    redis_url: str,
    rates: list[int],
    step_s: float,
) -> dict[str, Any]:
    import redis.asyncio as aioredis

    server = subprocess.Popen(
        server_cmd, env=server_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    clients = None
    try:
        ready(server)
        clients = subprocess.Popen(
            [sys.executable, "-m", "bench.bus_bench", "clients", "--proto", name,
             "--url", client_url, "--accounts", str(accounts_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert clients.stdout is not None and clients.stdin is not None
        line = clients.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"{name}: client fleet failed: {line!r}")
        connected = int(line.split()[1])
        rss_idle = rss_kb(server.pid)[0]
        redis = aioredis.Redis.from_url(redis_url, max_connections=64)
        publisher = BatchPublisher(redis)
        accounts = json.loads(accounts_file.read_text())
        # Warm up: open the publisher's connections and load its script, untimed.
        await publish_step(publisher, accounts, 200, 1.0, -1)
        await asyncio.sleep(1.0)
        steps = []
        for i, rate in enumerate(rates):
            cpu0 = cpu_s(server.pid)
            if os.environ.get("BUS_BENCH_GCSTATS"):
                print(f"  step {i} starts at {time.time():.2f}", flush=True)
            count, achieved = await publish_step(publisher, accounts, rate, step_s, i)
            await asyncio.sleep(1.0)  # let the tail arrive
            cpu_us = (cpu_s(server.pid) - cpu0) / count * 1e6
            steps.append(
                {"rate": rate, "published": count, "achieved": achieved, "cpu_us_per_event": cpu_us}
            )
            print(f"  {name}: {rate}/s published {count} ({achieved:.0f}/s)", flush=True)
        await redis.aclose()
        rss_cur, rss_peak = rss_kb(server.pid)
        clients.stdin.write("DONE\n")
        clients.stdin.flush()
        result = json.loads(clients.stdout.readline())
        for i, step in enumerate(steps):
            lat = result["latencies"].get(str(i), [])
            step["received"] = len(lat)
            step["p50_ms"] = percentile(lat, 0.50) * 1000
            step["p99_ms"] = percentile(lat, 0.99) * 1000
            step["max_ms"] = max(lat, default=float("nan")) * 1000
        return {
            "target": name, "connected": connected, "closed_by_end": result["closed"],
            "rss_idle_mb": rss_idle / 1024, "rss_end_mb": rss_cur / 1024,
            "rss_peak_mb": rss_peak / 1024, "steps": steps,
        }  # fmt: skip
    finally:
        for proc in (clients, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} never answered 200")


def report(results: list[dict[str, Any]]) -> None:
    print()
    for res in results:
        print(
            f"{res['target']}: {res['connected']} sockets, RSS idle {res['rss_idle_mb']:.1f} MB,"
            f" end {res['rss_end_mb']:.1f} MB, peak {res['rss_peak_mb']:.1f} MB"
        )
        print(f"  {'rate/s':>7} {'achieved':>9} {'recv/pub':>13} {'p50 ms':>8} {'p99 ms':>8}"
              f" {'max ms':>8} {'server CPU us/event':>20}")  # fmt: skip
        best = 0
        sustained = 0
        failed = False
        for s in res["steps"]:
            print(
                f"  {s['rate']:>7} {s['achieved']:>9.0f} {s['received']:>6}/{s['published']:<6}"
                f" {s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f} {s['max_ms']:>8.1f}"
                f" {s['cpu_us_per_event']:>20.0f}"
            )
            ok = s["p99_ms"] < P99_TARGET_S * 1000 and s["received"] == s["published"]
            if ok:
                best = max(best, s["rate"])
            failed = failed or not ok
            if not failed:
                sustained = s["rate"]
        res["max_rate_p99_under_100ms"] = best
        res["sustained_rate_p99_under_100ms"] = sustained
        print(
            f"  highest rate with p99 < 100 ms and nothing lost: {best}/s"
            f" (every step up to it: {sustained}/s)"
        )


def summarize(results: list[dict[str, Any]]) -> None:
    """Per target, the best round (highest rate under target, then lowest p99s)."""
    if len(results) <= 2:
        return
    print("\nsummary (best round per target):")
    by_target: dict[str, list[dict[str, Any]]] = {}
    for res in results:
        by_target.setdefault(res["target"], []).append(res)
    for target, runs in by_target.items():
        best = max(runs, key=lambda r: r["sustained_rate_p99_under_100ms"])
        p99s = " ".join(
            f"{s['rate']}:{min(r['steps'][i]['p99_ms'] for r in runs):.1f}"
            for i, s in enumerate(best["steps"])
        )
        print(
            f"  {target}: sustained rate p99<100ms {best['sustained_rate_p99_under_100ms']}/s;"
            f" best p99 ms per rate {p99s}; RSS peak"
            f" {max(r['rss_peak_mb'] for r in runs):.1f} MB"
        )


async def orchestrate(args: argparse.Namespace) -> None:
    from bench.redis_server import RedisServer
    from filmstrip.embedded.redis_server import free_port
    from filmstrip.embedded.supervisor import env_without_filmstrip
    from filmstrip.settings import load_settings

    rates = [int(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="filmstrip-busbench-"))
    redis_server = RedisServer(appendonly=False)
    redis_server.start()
    results: list[dict[str, Any]] = []
    try:
        where = {"DATA_DIR": str(work), "DB_PATH": str(work / "catalog.db")}
        settings = load_settings({f"FILMSTRIP_{k}": v for k, v in where.items()}
                                 | {"FILMSTRIP_REDIS_URL": redis_server.url})  # fmt: skip
        accounts_file = work / "accounts.json"
        await make_accounts(settings, args.clients, accounts_file)
        print(f"{args.clients} accounts ready", flush=True)

        names = [t for t in args.targets.split(",") if t]
        # Alternate the order each round so drift in the machine's load hits both alike.
        targets = [t for r in range(args.rounds) for t in (names if r % 2 == 0 else names[::-1])]
        for target in targets:
            port = free_port()
            if target == "filmstrip":
                env = env_without_filmstrip()
                env.update(
                    FILMSTRIP_REDIS_URL=redis_server.url,
                    FILMSTRIP_DB_PATH=str(work / "catalog.db"),
                    FILMSTRIP_DATA_DIR=str(work), FILMSTRIP_BUS_PORT=str(port),
                    FILMSTRIP_LOG_LEVEL="WARNING",
                )  # fmt: skip
                cmd = [sys.executable, "-c", BUS_RUNNER]

                def ready(proc: subprocess.Popen[str], port: int = port) -> None:
                    wait_http(f"http://127.0.0.1:{port}/readyz")

                url = f"ws://127.0.0.1:{port}/ws"
            else:
                node_dir = Path(args.node_dir) if args.node_dir else work / "node"
                if not (node_dir / "node_modules" / "@socket.io" / "redis-adapter").exists():
                    node_dir.mkdir(parents=True, exist_ok=True)
                    print("installing socket.io@4 @socket.io/redis-adapter@8 redis@4 ...",
                          flush=True)  # fmt: skip
                    subprocess.run(
                        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                         "socket.io@4", "@socket.io/redis-adapter@8", "redis@4"],
                        cwd=node_dir, check=True, stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                (node_dir / "server.js").write_text(SOCKETIO_SERVER_JS)
                env = dict(os.environ)
                cmd = ["node", str(node_dir / "server.js"), redis_server.url, str(port)]

                def ready(proc: subprocess.Popen[str]) -> None:
                    assert proc.stdout is not None
                    line = proc.stdout.readline()
                    if "LISTENING" not in line:
                        raise RuntimeError(f"socket.io server did not start: {line!r}")

                url = f"ws://127.0.0.1:{port}"
            print(f"running {target} ...", flush=True)
            result = await run_target(
                target, cmd, env, ready, url, accounts_file, redis_server.url, rates, args.step_s
            )
            results.append(result)
            await asyncio.sleep(1)
        report(results)
        summarize(results)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        redis_server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    c = sub.add_parser("clients", help="(internal) run the client fleet")
    c.add_argument("--proto", choices=["filmstrip", "socketio"], required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--accounts", required=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rates", default="250,500,1000,2000,3000,4000")
    parser.add_argument("--step-s", type=float, default=4.0)
    parser.add_argument("--targets", default="filmstrip,socketio")
    parser.add_argument("--node-dir", default="", help="reuse an npm install here")
    parser.add_argument("--json", default="", help="also write the results here")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, alternating order")
    args = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    if args.cmd == "clients":
        run(run_clients(args.proto, args.url, args.accounts))
    else:
        run(orchestrate(args))


if __name__ == "__main__":
    main()
