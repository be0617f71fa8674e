"""The client-library example in docs/running.md works as written: its Python block, run
against a real api, bus and worker (in this process, on loopback ports) with a path given
as a ``str``, uploads a photo and follows it to its outcome, and returns at once for the
same photo sent again (already done: no event will come)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from filmstrip.redis_client import RedisClient
from tests.support.docs_examples import python_block, roles_in_process

DOC = Path(__file__).resolve().parents[2] / "docs" / "running.md"


async def test_the_docs_example_follows_a_new_photo_and_ends_for_one_sent_before(
    redis_url: str,
    redis: RedisClient,
    tmp_path: Path,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # ResumeStore()'s home
    async with roles_in_process(tmp_path, redis_url, "docs") as (api, _bus_port):
        example: dict[str, Any] = {}
        exec(compile(python_block(DOC, "## The client library"), str(DOC), "exec"), example)
        follow: Callable[[str, str, str], Awaitable[list[str]]] = example["upload_and_follow"]
        path = str(corpus / "real/Canon_EOS_7D.jpg")  # a str, as a user writes it
        seen = await asyncio.wait_for(follow(api.url, api.token, path), 60)
        again = await asyncio.wait_for(follow(api.url, api.token, path), 10)
    assert seen[0] == "photo.uploaded" and seen[-1] == "photo.processing.completed", seen
    assert "photo.processing.stage.completed" in seen, seen  # followed: its stages too
    assert again == [], again  # the duplicate: done already, nothing to wait for
