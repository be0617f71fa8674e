"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from services.api.json import json_response
from services.api.state import state_of


async def healthz(request: web.Request) -> web.StreamResponse:
    """The process is up."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    """Redis, the catalog and the blob store all answer within 2 s."""
    state = state_of(request)

    async def check(probe: Awaitable[object]) -> str:
        try:
            await asyncio.wait_for(probe, timeout=2.0)
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"[:200]
        return "ok"

    redis, catalog, blobs = await asyncio.gather(
        check(state.redis.ping()), check(state.catalog.ping()), check(state.blobs.ping())
    )
    checks = {"redis": redis, "catalog": catalog, "blobs": blobs}
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
