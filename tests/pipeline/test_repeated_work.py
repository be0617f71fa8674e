"""Work the ready path must do once per photo (#26): each repeat is a fixed cost that
small photos pay in full."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvips

from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.decode import decodes_opened, open_header
from filmstrip.protocols.formats import sniff_format
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


def test_the_header_image_is_kept_only_when_the_decode_takes_it(
    options: PipelineOptions, corpus: Path
) -> None:
    # Kept past the header, an image the decode does not use holds libjpeg's state
    # through the decode: +10 MB peak RSS at concurrency 4 on 12 MP photos.
    big = bytes(pyvips.Image.black(4032, 3024, bands=3).write_to_buffer(".jpg"))
    for data, kept in (
        (big, False),  # decoded with DCT shrink 2: opened again
        ((corpus / "real/Casio_EX-S1.jpg").read_bytes(), True),
        ((corpus / "real/kimono.crop.png").read_bytes(), False),
    ):
        fmt = sniff_format(data[:64]) or ""
        header, _ = open_header(data, fmt, options)
        assert decodes_opened(header, options) is kept, fmt
