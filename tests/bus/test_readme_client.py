"""The minimal client in services/bus/README.md works as written: its Python block, run
against a real api, bus and worker (in this process, on loopback ports), uploads a photo
and follows it from its upload to its completion, missing none of its events, and returns at
once for a duplicate of a photo already done."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from filmstrip.redis_client import RedisClient
from tests.support.docs_examples import python_block, roles_in_process

README = Path(__file__).resolve().parents[2] / "services" / "bus" / "README.md"


async def test_the_readme_client_follows_its_upload_to_completion(
    redis_url: str, redis: RedisClient, tmp_path: Path, corpus: Path
) -> None:
    async with roles_in_process(tmp_path, redis_url, "readme") as (api, bus_port):
        client: dict[str, Any] = {}
        exec(compile(python_block(README, "### A minimal client"), str(README), "exec"), client)
        client.update(API=api.url, BUS=f"ws://127.0.0.1:{bus_port}/ws", TOKEN=api.token)
        follow: Callable[[str], Awaitable[list[str]]] = client["upload_and_follow"]
        seen = await asyncio.wait_for(follow(str(corpus / "real/Canon_EOS_7D.jpg")), 60)
        # The same bytes again are a 200 duplicate of a photo already done: no event
        # will come, so the client must not wait for one.
        again = await asyncio.wait_for(follow(str(corpus / "real/Canon_EOS_7D.jpg")), 10)
    # Subscribed after its 201, and still every event of the photo, in order.
    assert seen == [
        "photo.uploaded",
        "photo.processing.started",
        "photo.processing.stage.completed",
        "photo.processing.stage.completed",
        "photo.processing.completed",
    ], seen
    assert again == [], again
