"""The minimal client in services/bus/README.md works as written: its Python block, run
against a real api, bus and worker (in this process, on loopback ports), uploads a photo
and follows it from its upload to its completion, missing none of its events, and returns at
once for a duplicate of a photo already done."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from filmstrip.embedded.redis_server import free_port
from filmstrip.redis_client import RedisClient
from filmstrip.services.bus.app import create_app as create_bus
from filmstrip.services.worker.main import serve as serve_worker
from tests.api.conftest import api_settings, running_api

README = Path(__file__).resolve().parents[2] / "services" / "bus" / "README.md"


def readme_python() -> str:
    """The Python block of the README's "A minimal client" section."""
    section = README.read_text().split("### A minimal client", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's minimal client has no Python block"
    return match.group(1)


async def test_the_readme_client_follows_its_upload_to_completion(
    redis_url: str, redis: RedisClient, tmp_path: Path, corpus: Path
) -> None:
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
        async with running_api(settings, "readme") as api:
            client: dict[str, Any] = {}
            exec(compile(readme_python(), str(README), "exec"), client)
            client.update(API=api.url, BUS=f"ws://127.0.0.1:{bus_port}/ws", TOKEN=api.token)
            follow: Callable[[str], Awaitable[list[str]]] = client["upload_and_follow"]
            seen = await asyncio.wait_for(follow(str(corpus / "real/Canon_EOS_7D.jpg")), 60)
            # The same bytes again are a 200 duplicate of a photo already done: no event
            # will come, so the client must not wait for one.
            again = await asyncio.wait_for(follow(str(corpus / "real/Canon_EOS_7D.jpg")), 10)
    finally:
        stop.set()
        await worker
        await bus.cleanup()
    # Subscribed after its 201, and still every event of the photo, in order.
    assert seen == [
        "photo.uploaded",
        "photo.processing.started",
        "photo.processing.stage.completed",
        "photo.processing.stage.completed",
        "photo.processing.completed",
    ], seen
    assert again == [], again
