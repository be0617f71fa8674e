"""Publish -> receipt latency of a photo's events for the clients a new user writes (#20).

Each trial opens a socket to a ``filmstrip bus`` process and plays one upload at idle:
the client identifies, its photo is "uploaded" (``photo.uploaded`` published as the api
does), it subscribes to the photo after that "201", then the worker's events follow
(started, three stages, completed). Every event's latency is the time from just before
its publish to its frame being read by the client, in one process (one clock). Kinds:

* ``naive``: ``identify {token}``, then ``subscribe``; never resumes.
* ``resuming``: ``identify {token, last_event_id}`` (the one-message reconnect), waits for
  ``resumed``, then the same.
* ``legacy``: ``identify``, ``resume {last_event_id}``, then the same (the three-message form).

    python -m bench.bus_first_events                       # 100 trials of each kind
    python -m bench.bus_first_events --trials 200 --bus-code /path/to/other/checkout

``--bus-code`` runs the bus from another checkout (its ``src`` and root on PYTHONPATH), the
anchor: a bus that rejects a kind's messages is reported as such for that kind.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.redis_server import RedisServer
from bench.stats import percentile
from filmstrip import keys
from filmstrip.auth import new_token
from filmstrip.catalog import PhotoRecord, open_catalog, utcnow
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import Role, Supervisor, command, env_without_filmstrip
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.redis_client import RedisClient, open_redis
from filmstrip.settings import Settings, load_settings, sqlite_url

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("naive", "resuming", "legacy")
AFTER_201 = [ev.PHOTO_PROCESSING_STARTED, *[ev.STAGE_COMPLETED] * 3, ev.PHOTO_COMPLETED]


class Refused(Exception):
    """The bus answered a kind's handshake with an error (an older bus)."""


class Trial:
    """One socket's upload: publishes the photo's events and times each one's receipt."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, pub: EventPublisher) -> None:
        self.socket = socket
        self.pub = pub
        self.latencies: list[float] = []

    async def expect(self, kind: str) -> dict[str, Any]:
        while True:
            msg = await self.socket.receive(timeout=10)
            frame: dict[str, Any] = orjson.loads(msg.data)
            if frame["type"] == "error":
                raise Refused(frame["message"])
            if frame["type"] == kind:
                return frame

    async def event(self, type_: str, client_id: str, photo_id: str) -> None:
        """Publish one event and wait for it; record how long it took."""
        start = time.perf_counter()
        await self.pub.publish(type_, photo_id=photo_id, client_id=client_id, trace_id="0" * 32)
        while True:
            frame = orjson.loads((await self.socket.receive(timeout=10)).data)
            if frame.get("event") == type_ and frame.get("photo_id") == photo_id:
                self.latencies.append(time.perf_counter() - start)
                return


async def trial(
    http: aiohttp.ClientSession,
    url: str,
    kind: str,
    pub: EventPublisher,
    redis: RedisClient,
    account: dict[str, Any],
) -> list[float]:
    photo_id = account["photos"].pop()
    async with http.ws_connect(url) as socket:
        t = Trial(socket, pub)
        identify: dict[str, Any] = {"type": "identify", "token": account["token"]}
        if kind == "resuming":
            identify["last_event_id"] = account["last"] or "0"
        await socket.send_bytes(orjson.dumps(identify))
        identified = await t.expect("identified")
        if kind == "legacy":
            last = account["last"] or identified["last_event_id"]
            await socket.send_bytes(orjson.dumps({"type": "resume", "last_event_id": last}))
        if kind != "naive":
            await t.expect("resumed")
        await t.event(ev.PHOTO_UPLOADED, account["client_id"], photo_id)  # the client's room
        await socket.send_bytes(orjson.dumps({"type": "subscribe", "photo_id": photo_id}))
        await t.expect("subscribed")
        for type_ in AFTER_201:
            await t.event(type_, account["client_id"], photo_id)
        newest = await redis.xrevrange(keys.client_events(account["client_id"]), count=1)
        account["last"] = newest[0][0].decode()
    return t.latencies


async def accounts(settings: Settings, trials: int) -> dict[str, dict[str, Any]]:
    """A client per kind with a token and a photo per trial, in the bus's catalog."""
    catalog = await open_catalog(settings)
    out = {}
    try:
        for kind in KINDS:
            client_id = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
            await catalog.create_client(client_id, client_id, is_admin=False)
            token, token_hash = new_token()
            await catalog.add_token(token_hash, client_id)
            photos = []
            for _ in range(trials):
                pid = str(uuid.uuid4())
                await catalog.insert_photo(
                    PhotoRecord(
                        id=pid, client_id=client_id, session_id=None, blob_key=f"o/{pid}",
                        content_type="image/jpeg", bytes=1, sha256=None, status="queued",
                        job_id=f"photo:{pid}", trace_id="0" * 32, uploaded_at=utcnow(),
                    ),
                    None,
                )  # fmt: skip
                photos.append(pid)
            out[kind] = {"client_id": client_id, "token": token, "photos": photos, "last": None}
    finally:
        await catalog.close()
    return out


async def run(args: argparse.Namespace) -> None:
    code = Path(args.bus_code).resolve() if args.bus_code else ROOT
    with RedisServer(appendonly=False) as redis, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {
                "FILMSTRIP_REDIS_URL": redis.url,
                "FILMSTRIP_DATABASE_URL": sqlite_url(os.path.join(tmp, "catalog.db")),
            }
        )
        port = free_port()
        # The catalog is made here, by this checkout; an older bus reads it as it is.
        users = await accounts(settings, args.trials)
        env = env_without_filmstrip()
        env.update(
            FILMSTRIP_REDIS_URL=redis.url,
            FILMSTRIP_DATABASE_URL=settings.effective_database_url,
            FILMSTRIP_DATA_DIR=tmp,
            FILMSTRIP_BUS_HOST="127.0.0.1",
            FILMSTRIP_BUS_PORT=str(port),
            FILMSTRIP_LOG_LEVEL="WARNING",
            # Each trial is one socket; the rate limit is for hostile clients, not this.
            FILMSTRIP_BUS_RATE_PER_S="1000",
            PYTHONPATH=os.pathsep.join([str(code / "src"), str(code)]),
        )
        supervisor = Supervisor(
            [Role("bus", command("bus"), env, f"http://127.0.0.1:{port}/readyz", cwd=code)]
        )
        supervisor.start()
        client = await open_redis(settings)
        try:
            supervisor.wait_ready(timeout=30)
            pub = EventPublisher(client)
            url = f"ws://127.0.0.1:{port}/ws"
            results: dict[str, list[float] | str] = {kind: [] for kind in KINDS}
            async with aiohttp.ClientSession() as http:
                # Interleaved, one socket at a time: the kinds share the same moments.
                for _ in range(args.trials):
                    for kind in KINDS:
                        got = results[kind]
                        if isinstance(got, str):
                            continue
                        try:
                            got.extend(await trial(http, url, kind, pub, client, users[kind]))
                        except Refused as exc:
                            results[kind] = f"refused by this bus: {exc}"
                        await asyncio.sleep(args.gap_s)
        finally:
            await client.aclose()
            supervisor.stop()
    print(f"bus code: {code}; {args.trials} trials of each kind, {1 + len(AFTER_201)} events each")
    print(f"{'client':<10} {'events':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind in KINDS:
        got = results[kind]
        if isinstance(got, str):
            print(f"{kind:<10} {got}")
            continue
        ms = [v * 1000 for v in got]
        print(
            f"{kind:<10} {len(ms):>7} {percentile(ms, 0.5):>8.2f} {percentile(ms, 0.99):>8.2f} "
            f"{max(ms):>8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--gap-s", type=float, default=0.01, help="idle time between trials")
    parser.add_argument("--bus-code", default="", help="run the bus from this checkout")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
