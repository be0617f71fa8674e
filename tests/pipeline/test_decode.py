"""What the header and the one decode promise: a still picture in a format that can
animate is reported still, a header without pixels is refused as such, and a small HEIC
is not enlarged."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from filmstrip.errors import DataError
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.decode import read_header
from tests.pipeline.conftest import run_pipeline


def _still_gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (40, 30), 3).save(out, "GIF")
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_a_single_frame_is_not_an_animation(
    fmt: str, options: PipelineOptions, corpus: Path
) -> None:
    data = _still_gif() if fmt == "gif" else (corpus / "real/Nikon_D1X.webp").read_bytes()
    header = read_header(data, fmt, options)
    assert header.frames == 1 and header.animated is False
    ctx = run_pipeline(data, options, "full_processing")
    assert ctx.metadata["animated"] is False
    assert ctx.metadata["optimization"]["animated"] is False
    # and the same formats with frames are animations
    moving = (corpus / f"real/iss634.{fmt}").read_bytes()
    assert read_header(moving, fmt, options).animated is True


def test_a_gif_screen_without_height_is_refused_as_holding_no_pixels(
    options: PipelineOptions, corpus: Path
) -> None:
    # zero_width.gif turned on its side: 32x0, which libnsgif calls truncated.
    data = bytearray((corpus / "bad/zero_width.gif").read_bytes())
    data[6:10] = struct.pack("<HH", 32, 0)
    with pytest.raises(DataError) as info:
        run_pipeline(bytes(data), options, "quick_processing")
    assert info.value.code == "corrupt_image" and "no pixels" in info.value.message


def test_a_small_heic_is_never_enlarged(options: PipelineOptions) -> None:
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (120, 90), "red")).save(out)
    ctx = run_pipeline(out.getvalue(), options, "quick_processing")
    for name in ("preview", "thumbnail"):
        derivative = ctx.derivatives[name]
        assert (derivative.width, derivative.height) == (120, 90), name


def test_a_heic_is_converted_through_its_embedded_profile(
    options: PipelineOptions, corpus: Path
) -> None:
    # The corpus photo whose profile spins hues, as a HEIC with that profile: only a
    # colour-managed decode puts red at 12 o'clock.
    with Image.open(corpus / "real/red-at-12-oclock-with-color-profile.jpg") as original:
        heif = pillow_heif.from_pillow(original.convert("RGB"))
        heif.info["icc_profile"] = original.info["icc_profile"]
    out = io.BytesIO()
    heif.save(out, quality=90)
    ctx = run_pipeline(out.getvalue(), options, "full_processing")
    assert ctx.metadata["icc_profile"]
    for name in ("thumbnail", "optimized"):
        if name not in ctx.derivatives:
            continue
        with Image.open(io.BytesIO(ctx.derivatives[name].data)) as rendition:
            rgb = rendition.convert("RGB")
            r, g, b = rgb.getpixel((rgb.width // 2, round(rgb.height * 0.06)))  # type: ignore[misc]
        assert r > 180 and g < 110 and b < 110, (name, r, g, b)


def test_a_10_bit_heic_is_read_as_its_colours(options: PipelineOptions) -> None:
    # iPhones' HDR photos are 10-bit HEIC: brought to 8 bits, not read byte by byte.
    red = struct.pack("<3H", 0xC000, 0x4000, 0x4000) * (64 * 48)
    out = io.BytesIO()
    pillow_heif.from_bytes(mode="RGB;16", size=(64, 48), data=red).save(out, quality=95)
    assert pillow_heif.open_heif(out.getvalue()).info["bit_depth"] == 10
    ctx = run_pipeline(out.getvalue(), options, "quick_processing")
    with Image.open(io.BytesIO(ctx.derivatives["thumbnail"].data)) as thumbnail:
        assert (thumbnail.width, thumbnail.height) == (64, 48)
        r, g, b = thumbnail.convert("RGB").getpixel((32, 24))  # type: ignore[misc]
    assert abs(r - 192) < 12 and abs(g - 64) < 12 and abs(b - 64) < 12, (r, g, b)
