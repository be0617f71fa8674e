"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Literal

from aiohttp import web

from filmstrip.protocols.http import Readiness
from filmstrip.services.api.json import json_response
from filmstrip.services.api.state import state_of
from filmstrip.supervised import mark

log = logging.getLogger("filmstrip.api.health")


async def healthz(request: web.Request) -> web.StreamResponse:
    """The process is up."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """Redis, the catalog and the blob store all answer within 2 s."""
    state = state_of(request)

    async def check(name: str, probe: Awaitable[object]) -> Literal["ok", "down"]:
        try:
            await asyncio.wait_for(probe, timeout=2.0)
        except Exception as exc:
            # The cause names addresses and ports: for the operator's log only.
            log.warning("not ready: %s is down: %s: %s", name, type(exc).__name__, exc)
            return "down"
        return "ok"

    redis, catalog, blobs = await asyncio.gather(
        check("redis", state.redis.ping()),
        check("catalog", state.catalog.ping()),
        check("blobs", state.blobs.ping()),
    )
    checks = {"redis": redis, "catalog": catalog, "blobs": blobs}
    ready = all(v == "ok" for v in checks.values())
    answer = json_response(
        Readiness(status="ready" if ready else "unavailable", checks=checks),
        status=200 if ready else 503,
    )
    return mark(answer)  # whose answer this is, for the dev that started this api
