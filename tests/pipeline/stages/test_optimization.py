"""The optimised copy across reruns and options: an older copy never outlives a rerun that
keeps nothing, an animation is never re-encoded as a still AVIF, a waiting stage can be
stopped, and each candidate says what it is."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import pytest
import pyvips

from filmstrip.errors import ResourceError
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.stages.optimization import Optimization, full_size_slot

OPTIMIZED = {"optimized", "optimized_avif"}


def _optimise(ctx: StageContext, options: PipelineOptions) -> None:
    # Settings change between deliveries of a job (a redeploy, a reprocess).
    ctx.options = options
    get_stage("optimization").run(ctx)


def test_a_rerun_that_keeps_nothing_drops_the_older_copy(
    options: PipelineOptions, corpus: Path
) -> None:
    ctx = StageContext((corpus / "real/Olympus_PEN_E-P3.jpg").read_bytes(), options)
    _optimise(ctx, msgspec.structs.replace(options, optimize_min_saving=0.0))
    assert "optimized" in ctx.derivatives
    _optimise(ctx, msgspec.structs.replace(options, optimize_min_saving=0.99))
    assert ctx.metadata["optimization"]["kept"] is False
    assert not ctx.derivatives.keys() & OPTIMIZED


def test_a_rerun_that_skips_an_animation_drops_the_older_copy(
    options: PipelineOptions, corpus: Path
) -> None:
    ctx = StageContext((corpus / "real/iss634.gif").read_bytes(), options)
    _optimise(ctx, options)
    assert "optimized" in ctx.derivatives
    _optimise(ctx, msgspec.structs.replace(options, max_pixels=2_000_000))
    assert ctx.metadata["optimization"]["skipped"] == "animation_too_large"
    assert not ctx.derivatives.keys() & OPTIMIZED


def test_an_animation_gets_no_avif_candidate(options: PipelineOptions, corpus: Path) -> None:
    opts = msgspec.structs.replace(options, optimize_avif=True, optimize_avif_max_time_ratio=1e6)
    ctx = StageContext((corpus / "real/iss634.gif").read_bytes(), opts)
    summary = get_stage("optimization").run(ctx)
    assert "avif_ms" not in summary
    assert "optimized_avif" not in ctx.derivatives
    optimized = ctx.derivatives["optimized"]
    assert pyvips.Image.new_from_buffer(optimized.data, "", n=-1).get("n-pages") == 42


def test_each_candidate_is_named_and_typed_for_its_format(
    options: PipelineOptions, corpus: Path
) -> None:
    ctx = StageContext((corpus / "real/Sony_Cybershot.jpg").read_bytes(), options)
    for fmt, name in (("webp", "optimized"), ("avif", "optimized_avif")):
        derivative, _seconds = Optimization().encode(ctx, fmt, 0, animated=False)
        assert (derivative.name, derivative.ext, derivative.content_type) == (
            name,
            fmt,
            f"image/{fmt}",
        )
        # upright: stored 311x450 with orientation 6, displayed 450x311
        assert (derivative.width, derivative.height) == (450, 311)
        assert (
            pyvips.Image.new_from_buffer(derivative.data, "")
            .get("vips-loader")
            .startswith(f"{'heif' if fmt == 'avif' else fmt}load")
        )


def test_a_stage_waiting_for_a_full_size_slot_stops_when_cancelled(
    options: PipelineOptions, corpus: Path
) -> None:
    # A gate of its own (gates are per size), held full by this test.
    opts = msgspec.structs.replace(options, optimize_concurrency=97)
    holder = StageContext(b"", opts)
    slots = [full_size_slot(holder) for _ in range(97)]
    for slot in slots:
        slot.__enter__()
    waiting = StageContext(b"", opts)
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            with full_size_slot(waiting):
                outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    try:
        waiting.cancel()
        thread.join(timeout=5)
        assert not thread.is_alive(), "the cancelled stage still waits for a slot"
        assert isinstance(outcome[0], ResourceError) and outcome[0].code == "stage_timeout"
    finally:
        for slot in slots:
            slot.__exit__(None, None, None)
        thread.join(timeout=5)


@pytest.mark.parametrize("name", ["iss634.gif", "iss634.webp"])
def test_an_animation_keeps_its_frame_size(
    name: str, options: PipelineOptions, corpus: Path
) -> None:
    ctx = StageContext((corpus / "real" / name).read_bytes(), options)
    derivative, _seconds = Optimization().encode(ctx, "webp", 0, animated=True)
    assert (derivative.width, derivative.height) == (245, 245)


def test_the_smaller_candidate_within_its_time_budget_is_kept(
    options: PipelineOptions, corpus: Path
) -> None:
    # At this quality the AVIF of this photo is about 60 % of the WebP's size.
    opts = msgspec.structs.replace(
        options,
        optimize_avif=True,
        optimize_avif_effort=2,
        optimize_quality=30,
        optimize_avif_max_time_ratio=1e6,
    )
    ctx = StageContext((corpus / "real/hopper.tif").read_bytes(), opts)
    get_stage("optimization").run(ctx)
    webp, _seconds = Optimization().encode(ctx, "webp", opts.optimize_effort, animated=False)
    kept = ctx.derivatives["optimized_avif"]
    assert "optimized" not in ctx.derivatives and len(kept.data) < len(webp.data)
    assert ctx.metadata["optimization"]["format"] == "avif"
