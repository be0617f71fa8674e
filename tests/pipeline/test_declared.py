"""The hand-read header sizes: right on the files the decoder refuses, and never an
exception on any bytes (they run on hostile files the decoder already gave up on)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from filmstrip.pipeline.declared import declared_size, ends_early


@pytest.mark.parametrize(
    ("name", "fmt", "size"),
    [("max_size.jpg", "jpeg", (65535, 65535)), ("null_height.jpg", "jpeg", (0, 800)),
     ("zero_width.gif", "gif", (0, 32)), ("decompression_bomb.gif", "gif", (65535, 66601)),
     ("bomb_30000x30000.png", "png", (30000, 30000)), ("missing-sof.jpg", "jpeg", None)],
)  # fmt: skip
def test_the_size_the_header_declares(
    name: str, fmt: str, size: tuple[int, int] | None, corpus: Path
) -> None:
    assert declared_size((corpus / "bad" / name).read_bytes(), fmt) == size


def test_a_cut_png_ends_early_and_a_garbled_one_does_not(corpus: Path) -> None:
    assert ends_early((corpus / "bad/truncated_image.png").read_bytes(), "png")
    assert not ends_early((corpus / "bad/broken_data_stream.png").read_bytes(), "png")
    whole = (corpus / "real/kimono.crop.png").read_bytes()
    assert not ends_early(whole, "png")
    # Cut in IEND's CRC, after its type: the image end is there, every pixel before it.
    assert whole.endswith(b"IEND\xae\x42\x60\x82")
    assert not ends_early(whole[:-4], "png")


def test_any_bytes_give_an_answer_not_an_exception(corpus: Path) -> None:
    rng = random.Random(3)
    sources = [
        (corpus / path).read_bytes()[:400]
        for path in ("bad/max_size.jpg", "bad/zero_width.gif", "real/kimono.crop.png")
    ]
    for source in sources:
        for cut in range(len(source)):
            flipped = bytearray(source[:cut])
            for _ in range(min(3, cut)):
                flipped[rng.randrange(cut)] = rng.randrange(256)
            for fmt in ("jpeg", "gif", "png", "webp"):
                declared_size(source[:cut], fmt)
                declared_size(bytes(flipped), fmt)
                ends_early(bytes(flipped), fmt)


def test_every_kind_of_jpeg_frame_declares_its_size_after_any_fill(corpus: Path) -> None:
    # Progressive (C2) and extended (C1) frames as well as baseline (C0): libjpeg refuses
    # an edge over 65500 px in each before libvips has a header to give.
    data = (corpus / "bad/max_size.jpg").read_bytes()
    baseline = data.index(b"\xff\xc0")
    for marker in (b"\xc0", b"\xc1", b"\xc2"):
        frame = data[: baseline + 1] + marker + data[baseline + 2 :]
        assert declared_size(frame, "jpeg") == (65535, 65535), marker
    # A marker may be preceded by fill bytes (0xFF).
    filled = data[:baseline] + b"\xff" + data[baseline:]
    assert declared_size(filled, "jpeg") == (65535, 65535)
