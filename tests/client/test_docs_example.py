"""The client-library example in docs/running.md works as written: its Python block, run
against a real api, bus and worker (in this process, on loopback ports) with a path given
as a ``str``, uploads a photo and follows it to its outcome, and returns at once for the
same photo sent again (already done: no event will come)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from filmstrip.embedded.redis_server import free_port
from filmstrip.redis_client import RedisClient
from filmstrip.services.bus.app import create_app as create_bus
from filmstrip.services.worker.main import serve as serve_worker
from tests.api.conftest import api_settings, running_api

DOC = Path(__file__).resolve().parents[2] / "docs" / "running.md"


def doc_python() -> str:
    """The Python block of the page's "The client library" section."""
    section = DOC.read_text().split("## The client library", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the client library's section has no Python block"
    return match.group(1)


async def test_the_docs_example_follows_a_new_photo_and_ends_for_one_sent_before(
    redis_url: str,
    redis: RedisClient,
    tmp_path: Path,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # ResumeStore()'s home
    bus_port = free_port()
    settings = api_settings(
        tmp_path, redis_url, bus_port=str(bus_port), worker_metrics_port="0",
        defer_optimization="false", default_pipeline="quick_processing",
    )  # fmt: skip
    bus = web.AppRunner(create_bus(settings), handle_signals=False, shutdown_timeout=2)
    await bus.setup()
    await web.TCPSite(bus, "127.0.0.1", bus_port).start()
    stop = asyncio.Event()
    worker = asyncio.create_task(serve_worker(settings, stop))
    try:
        async with running_api(settings, "docs") as api:
            example: dict[str, Any] = {}
            exec(compile(doc_python(), str(DOC), "exec"), example)
            follow: Callable[[str, str, str], Awaitable[list[str]]] = example["upload_and_follow"]
            path = str(corpus / "real/Canon_EOS_7D.jpg")  # a str, as a user writes it
            seen = await asyncio.wait_for(follow(api.url, api.token, path), 60)
            again = await asyncio.wait_for(follow(api.url, api.token, path), 10)
    finally:
        stop.set()
        await worker
        await bus.cleanup()
    assert seen[0] == "photo.uploaded" and seen[-1] == "photo.processing.completed", seen
    assert "photo.processing.stage.completed" in seen, seen  # followed: its stages too
    assert again == [], again  # the duplicate: done already, nothing to wait for
