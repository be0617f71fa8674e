"""Process-wide libvips policy and the optimisation choices."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import pyvips

from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.vips import decode_error
from filmstrip.settings import Settings, load_settings
from tests.pipeline.conftest import run_pipeline


def test_untrusted_and_unlisted_loaders_are_blocked(options: PipelineOptions, corpus: Path) -> None:
    svg = (corpus / "bad/script.svg").read_bytes()
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(svg, "").avg()
    # while the loaders we accept still work
    jpeg = (corpus / "real/Casio_EX-S1.jpg").read_bytes()
    assert pyvips.Image.new_from_buffer(jpeg, "").width == 640


def test_options_follow_settings() -> None:
    settings = load_settings(
        {"FILMSTRIP_THUMBNAIL_SIZE": "300", "FILMSTRIP_DECODE_FAIL_ON": "truncated"}
    )
    opts = settings.pipeline
    assert opts.thumbnail_size == 300 and opts.fail_on == "truncated"
    assert Settings().pipeline == PipelineOptions()
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"decode_fail_on": "sometimes"}, PipelineOptions)


def test_animated_gif_stays_animated_when_optimised(options: PipelineOptions, corpus: Path) -> None:
    ctx = run_pipeline((corpus / "real/iss634.gif").read_bytes(), options, "full_processing")
    assert ctx.metadata["optimization"]["animated"] is True
    optimized = ctx.derivatives["optimized"]
    image = pyvips.Image.new_from_buffer(optimized.data, "", n=-1)
    assert image.get("n-pages") == 42
    assert (optimized.width, optimized.height) == (245, 245)
    # while the thumbnail is the first frame only
    thumb = pyvips.Image.new_from_buffer(ctx.derivatives["thumbnail"].data, "")
    assert thumb.get_typeof("n-pages") == 0 or thumb.get("n-pages") == 1


@pytest.mark.parametrize(("ratio", "avif_allowed"), [(1000.0, True), (1e-9, False)])
def test_avif_is_kept_only_within_its_time_budget(
    options: PipelineOptions, corpus: Path, ratio: float, avif_allowed: bool
) -> None:
    opts = msgspec.structs.replace(options, optimize_avif=True, optimize_avif_max_time_ratio=ratio)
    ctx = StageContext((corpus / "real/Olympus_PEN_E-P3.jpg").read_bytes(), opts)
    get_stage("validation").run(ctx)
    summary = get_stage("optimization").run(ctx)
    assert "avif_ms" in summary and "webp_ms" in summary
    result = ctx.metadata["optimization"]
    assert result["kept"]
    kept = ctx.derivatives.get("optimized_avif") or ctx.derivatives["optimized"]
    assert result["format"] == kept.ext and result["bytes"] == len(kept.data)
    if not avif_allowed:
        assert result["format"] == "webp" and "optimized_avif" not in ctx.derivatives
    assert len(ctx.derivatives.keys() & {"optimized", "optimized_avif"}) == 1


def test_optimized_copy_is_dropped_when_not_smaller(options: PipelineOptions, corpus: Path) -> None:
    # A small AVIF: a WebP at the same quality is larger, so nothing is kept.
    ctx = run_pipeline((corpus / "real/exif.avif").read_bytes(), options, "full_processing")
    result = ctx.metadata["optimization"]
    assert result["kept"] is False and result["bytes_saved"] == 0
    assert result["bytes"] >= result["original_bytes"]
    assert "optimized" not in ctx.derivatives


def test_optimized_copy_is_kept_only_when_it_saves_the_minimum(
    options: PipelineOptions, corpus: Path
) -> None:
    data = (corpus / "real/Olympus_PEN_E-P3.jpg").read_bytes()

    def optimise(min_saving: float) -> StageContext:
        ctx = StageContext(data, msgspec.structs.replace(options, optimize_min_saving=min_saving))
        get_stage("validation").run(ctx)
        get_stage("optimization").run(ctx)
        return ctx

    saving = optimise(0.0).metadata["optimization"]["bytes_saved"] / len(data)
    assert 0 < saving < 0.9, saving
    under = optimise(saving - 0.01)
    assert under.metadata["optimization"]["kept"] and "optimized" in under.derivatives
    over = optimise(saving + 0.01)
    assert over.metadata["optimization"]["kept"] is False
    assert over.metadata["optimization"]["bytes_saved"] == 0
    assert "optimized" not in over.derivatives
    # The default asks for 10 %, from FILMSTRIP_OPTIMIZE_MIN_SAVING.
    assert Settings().pipeline.optimize_min_saving == PipelineOptions().optimize_min_saving == 0.10
    settings = load_settings({"FILMSTRIP_OPTIMIZE_MIN_SAVING": "0.25"})
    assert settings.pipeline.optimize_min_saving == 0.25


def test_oversized_animation_is_not_flattened_into_a_still(
    options: PipelineOptions, corpus: Path
) -> None:
    # 42 frames of 245x245 = 2.5 MP: under a 2 MP budget the animation is left alone.
    opts = msgspec.structs.replace(options, max_pixels=2_000_000)
    ctx = run_pipeline((corpus / "real/iss634.gif").read_bytes(), opts, "full_processing")
    assert ctx.metadata["optimization"]["skipped"] == "animation_too_large"
    assert ctx.metadata["optimization"]["kept"] is False
    assert "optimized" not in ctx.derivatives and "thumbnail" in ctx.derivatives


@pytest.mark.parametrize(
    ("message", "code", "category"),
    [
        ("VipsJpeg: out of memory", "out_of_memory", "RESOURCE"),
        ("heifload: Memory allocation error: cannot allocate 96000000 bytes", "out_of_memory",
         "RESOURCE"),
        ("VipsJpeg: Premature end of JPEG file", "truncated_image", "DATA"),
        ("VipsForeignLoad: image exceeds the security limit", "too_many_pixels", "DATA"),
        ("VipsJpeg: Maximum supported image dimension is 65500 pixels", "too_large_dimension",
         "DATA"),
        ("VipsJpeg: Bogus marker length", "corrupt_image", "DATA"),
    ],
)  # fmt: skip
def test_a_decoder_failure_is_categorised_by_its_cause(
    message: str, code: str, category: str
) -> None:
    # Out of memory is this worker's state, not the file's: retried later, not failed.
    error = decode_error(pyvips.Error(message), "the JPEG")
    assert (error.code, str(error.category)) == (code, category)
