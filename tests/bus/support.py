"""Helpers for bus tests: accounts, a WebSocket client that speaks the protocol, and a bus
run as a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType, web
from redis.asyncio.cluster import RedisCluster

from filmstrip.embedded.supervisor import Role, Supervisor, command, env_without_filmstrip
from filmstrip.redis_client import RedisClient
from filmstrip.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RECV_TIMEOUT_S = 5.0


async def kill_pubsub_clients(redis: RedisClient) -> int:
    """Cut every pub/sub connection (as Redis does to a slow subscriber), on every node of
    a cluster; how many were cut."""
    command = ("CLIENT", "KILL", "TYPE", "pubsub")
    if isinstance(redis, RedisCluster):
        replies = await redis.execute_command(*command, target_nodes=RedisCluster.ALL_NODES)
        return sum(int(n) for n in replies.values()) if isinstance(replies, dict) else int(replies)
    return int(await redis.execute_command(*command))


@dataclass
class Account:
    client_id: str
    token: str
    sessions: list[str]
    photos: list[str]


@dataclass
class RunningBus:
    url: str
    app: web.Application
    settings: Settings

    @property
    def http(self) -> str:
        return self.url.replace("ws://", "http://").removesuffix("/ws")


class Closed(Exception):
    """The bus closed the socket; ``code`` is its close code."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class BusClient:
    """A real aiohttp WebSocket client with protocol helpers."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(message).decode())

    async def recv(self, within: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        """The next message; raise :class:`Closed` if the socket closed instead."""
        msg = await self.ws.receive(timeout=within)
        if msg.type is WSMsgType.TEXT:
            out: dict[str, Any] = orjson.loads(msg.data)
            return out
        raise Closed(self.ws.close_code, str(msg.extra or ""))

    async def expect(self, type_: str, within: float = RECV_TIMEOUT_S) -> dict[str, Any]:
        msg = await self.recv(within)
        assert msg["type"] == type_, msg
        return msg

    async def identify(
        self,
        token: str,
        session_id: str | None = None,
        *,
        last_event_id: str | None = None,
        photo_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "identify", "token": token}
        if session_id is not None:
            body["session_id"] = session_id
        if last_event_id is not None:
            body["last_event_id"] = last_event_id
        if photo_ids is not None:
            body["photo_ids"] = photo_ids
        await self.send(body)
        return await self.expect("identified")

    async def subscribe(self, photo_id: str) -> None:
        await self.send({"type": "subscribe", "photo_id": photo_id})
        await self.expect("subscribed")

    async def events(self, n: int, within: float = RECV_TIMEOUT_S) -> list[dict[str, Any]]:
        """The next ``n`` messages, which must all be events."""
        out = [await self.recv(within) for _ in range(n)]
        for msg in out:
            assert msg["type"].endswith(".event"), msg
        return out

    async def barrier(self) -> None:
        """Round-trip a ping: everything the bus queued before the pong has arrived."""
        await self.send({"type": "ping"})
        await self.expect("pong")

    async def closed(self, within: float = RECV_TIMEOUT_S) -> int | None:
        """Read until the socket closes; return the close code."""
        deadline = time.monotonic() + within
        while True:
            msg = await self.ws.receive(timeout=max(0.01, deadline - time.monotonic()))
            if msg.type is WSMsgType.CLOSE:
                return int(msg.data)
            if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING):
                return self.ws.close_code
            if msg.type is WSMsgType.ERROR:
                return self.ws.close_code


class BusProcess:
    """``filmstrip bus`` with the given settings on ``port``."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.supervisor: Supervisor | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.supervisor.process("bus") if self.supervisor else None

    def start(self, timeout: float = 15.0) -> None:
        env = env_without_filmstrip()
        env.update(
            FILMSTRIP_REDIS_URL=self.settings.redis.url,
            FILMSTRIP_DATABASE_URL=self.settings.effective_database_url,
            FILMSTRIP_DATA_DIR=self.settings.files.data_dir,
            FILMSTRIP_BUS_HOST="127.0.0.1",
            FILMSTRIP_BUS_PORT=str(self.port),
            FILMSTRIP_BUS_CLOSE_TIMEOUT_S="2",
            FILMSTRIP_BUS_MAX_SOCKETS_PER_CLIENT=str(self.settings.bus.max_sockets_per_client),
            FILMSTRIP_BUS_PRESENCE_INTERVAL_S=str(self.settings.bus.presence_interval_s),
            FILMSTRIP_LOG_LEVEL="WARNING",
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        )
        health = f"http://127.0.0.1:{self.port}/readyz"
        self.supervisor = Supervisor([Role("bus", command("bus"), env, health, cwd=ROOT)])
        self.supervisor.start()
        self.supervisor.wait_ready(timeout=timeout)

    def terminate(self) -> None:
        """SIGTERM: the bus closes its sockets with 1001 and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait(self, within: float = 10.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("bus did not exit")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.kill()
        self.supervisor = None
