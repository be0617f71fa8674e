"""What the header tells the catalog before any pixel is decoded: a still picture in a
format that can animate is reported still."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

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
