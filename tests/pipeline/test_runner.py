"""run_stage: off the loop, with a deadline that stops libvips for real."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import pyvips

from filmstrip.concurrency import run_blocking
from filmstrip.errors import Category, DataError, ResourceError
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.runner import run_stage
from tests.support.loop_watch import slow_steps


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    """A 12 MP noisy JPEG: slow enough to encode at full size that a tiny deadline hits."""
    noise = pyvips.Image.gaussnoise(4000, 3000, sigma=40, mean=128).cast("uchar")
    image = noise.bandjoin([noise.rot180(), noise.fliphor()])
    return bytes(image.write_to_buffer(".jpg", Q=90))


async def test_run_stage_returns_the_summary(options: PipelineOptions, corpus: Path) -> None:
    ctx = StageContext((corpus / "real/Sony_Cybershot.jpg").read_bytes(), options)
    summary = await run_stage(get_stage("validation"), ctx, timeout_s=30)
    assert summary == {"format": "jpeg", "width": 450, "height": 311, "frames": 1}
    summary = await run_stage(get_stage("thumbnails"), ctx)
    assert summary["thumbnail"]["width"] == 256 and set(ctx.derivatives) == {
        "thumbnail",
        "preview",
    }


async def test_timeout_is_a_resource_error_and_kills_the_work(
    options: PipelineOptions, big_jpeg: bytes
) -> None:
    ctx = StageContext(big_jpeg, options)
    await run_stage(get_stage("validation"), ctx)
    with pytest.raises(ResourceError) as info:
        await run_stage(get_stage("optimization"), ctx, timeout_s=0.05)
    assert info.value.code == "stage_timeout" and info.value.category is Category.RESOURCE
    assert ctx.cancelled
    # libvips sees the kill at its next tile, long before the encode would have finished.
    for _ in range(200):
        if ctx.aborted:
            break
        await asyncio.sleep(0.05)
    assert ctx.aborted
    # A spent context refuses further stages instead of half-running them.
    with pytest.raises(ResourceError):
        await run_stage(get_stage("thumbnails"), ctx)


async def test_stage_errors_pass_through_unchanged(options: PipelineOptions) -> None:
    ctx = StageContext(b"<svg xmlns='http://www.w3.org/2000/svg'/>", options)
    with pytest.raises(DataError) as info:
        await run_stage(get_stage("validation"), ctx)
    assert info.value.code == "unsupported_type" and "SVG" in info.value.message


async def test_stages_never_block_the_loop(options: PipelineOptions, corpus: Path) -> None:
    """No step of the loop may take 100 ms while a full pipeline runs on three photos at
    once (the work runs in the pool, never on the loop)."""
    names = ["Canon_PowerShot_A85.jpg", "exif-at-eof.heic", "plum-blossom-large.png"]
    photos = [(corpus / "real" / name).read_bytes() for name in names]

    async def one(data: bytes) -> dict[str, Any]:
        ctx = StageContext(data, options)
        for name in ("validation", "metadata", "thumbnails", "optimization"):
            await run_stage(get_stage(name), ctx)
        return ctx.metadata

    # ThreadPoolExecutor starts its threads lazily, and Thread.start() waits for the new
    # thread to run: on a loaded machine that alone can take 50 ms. A worker warms its
    # pool at startup; so do we.
    await asyncio.gather(*(run_blocking(time.sleep, 0.01) for _ in range(16)))
    with slow_steps() as slow:
        results = await asyncio.gather(*(one(data) for data in photos))
    assert [r["format"] for r in results] == ["jpeg", "heif", "png"]
    assert not slow, slow
