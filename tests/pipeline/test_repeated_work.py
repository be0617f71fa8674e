"""Work the ready path must do once per photo (#26): each repeat is a fixed cost that
small photos pay in full."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips

from filmstrip.pipeline import PipelineOptions
from tests.pipeline.conftest import run_pipeline


def test_a_jpeg_decoded_at_full_scale_is_opened_once(
    options: PipelineOptions, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[bytes] = []
    real = pyvips.Image.new_from_buffer

    def counting(data: bytes, *args: object, **kwargs: object) -> pyvips.Image:
        opened.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(pyvips.Image, "new_from_buffer", staticmethod(counting))
    data = (corpus / "real/Casio_EX-S1.jpg").read_bytes()  # 640x480: no DCT shrink
    ctx = run_pipeline(data, options, "quick_processing")
    # The header's lazily opened image is the one decoded: its header and EXIF are
    # read once, not again for the decode.
    assert len(opened) == 1
    assert ctx.derivatives["preview"].width == 640
