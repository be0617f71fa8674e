"""Readiness: a dependency that hangs is down, answered in bounded time."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.api.conftest import Api


async def test_a_blob_store_that_never_answers_is_down_within_the_probe_timeout(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blackholed dependency (no refusal, no answer) must not hang the probe: a load
    balancer waits on it to take the process out of rotation."""

    async def hang() -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(api.state.blobs, "ping", hang)
    started = time.monotonic()
    ready = await asyncio.wait_for(api.http.get(f"{api.url}/readyz"), 10)
    body = await ready.json()
    assert ready.status == 503, body
    assert body["checks"] == {"redis": "ok", "catalog": "ok", "blobs": "down"}
    assert time.monotonic() - started < 5
