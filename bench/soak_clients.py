"""The soaks' clients: each uploads its photos (retrying what the system refused or a
failure cut, with the same bytes, so a retry of a stored upload is answered as its
duplicate) and holds a WebSocket that resumes after any drop, counting what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from bench.soak_photos import Plan

# How long a client waits for its socket's first identify before it uploads anyway.
IDENTIFY_WAIT_S = 60.0


@dataclass
class Endpoints:
    """Where the clients go: any api, any bus (a new pick on each retry or reconnect)."""

    api_urls: list[str]
    bus_urls: list[str]
    # Each upload attempt's limit (None: aiohttp's default). An attempt whose connection a
    # network failure left hanging ends here and is retried, as a real client would.
    upload_timeout_s: float | None = None


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
    answered_as_duplicate: int = 0  # retries of an upload that had been stored after all
    in_flight: dict[str, int] = field(default_factory=dict)  # api url -> uploads under way


async def run_client(
    idx: int,
    token: str,
    photos: Plan,
    endpoints: Endpoints,
    stats: ClientStats,
    uploads_done: asyncio.Event,
    all_done: asyncio.Event,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = (
        aiohttp.ClientTimeout(total=endpoints.upload_timeout_s, sock_connect=3)
        if endpoints.upload_timeout_s
        else None
    )
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        identified = asyncio.Event()
        listener = asyncio.create_task(listen(token, endpoints, stats, all_done, idx, identified))
        # Upload only once the socket has identified, as a client must: events published
        # before it joined are not replayed to a socket that gives no id to resume from.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(identified.wait(), IDENTIFY_WAIT_S)
        rng = random.Random(idx)
        for data, is_bad in photos:
            for attempt in range(60):
                url = rng.choice(endpoints.api_urls)
                form = aiohttp.FormData()
                form.add_field("file", data, filename="p.jpg")
                started = time.monotonic()
                stats.in_flight[url] = stats.in_flight.get(url, 0) + 1
                try:
                    async with http.post(f"{url}/v1/photos", data=form) as resp:
                        body = await resp.json(content_type=None)
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError):
                    status, body = 0, {}
                finally:
                    stats.in_flight[url] -= 1
                if status in (200, 201):
                    stats.upload_latency.append(time.monotonic() - started)
                    stats.accepted.setdefault(body["photo_id"], started)
                    if status == 200 and attempt:
                        # A retry (of an attempt cut or refused) answered as the duplicate
                        # of what an earlier attempt stored after all.
                        stats.answered_as_duplicate += 1
                    if is_bad:
                        stats.expected_bad.add(body["photo_id"])
                    break
                stats.refused += 1
                await asyncio.sleep(min(2.0, 0.1 * (attempt + 1)))
        uploads_done.set()
        await listener


async def listen(
    token: str,
    endpoints: Endpoints,
    stats: ClientStats,
    done: asyncio.Event,
    idx: int = 0,
    identified: asyncio.Event | None = None,
) -> None:
    """Hold a WebSocket; reconnect (to the next bus) and resume from the last event id
    after any drop. ``identified`` is set once the first socket has identified."""
    last_id: str | None = None
    turn = idx
    async with aiohttp.ClientSession() as session:
        while not done.is_set():
            bus_url = endpoints.bus_urls[turn % len(endpoints.bus_urls)]
            turn += 1
            try:
                async with session.ws_connect(bus_url, heartbeat=10) as ws:
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
                            if identified is not None:
                                identified.set()
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
