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
    assert not ends_early((corpus / "real/kimono.crop.png").read_bytes(), "png")


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
