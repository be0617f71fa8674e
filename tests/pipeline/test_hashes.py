"""ThumbHash and dHash fingerprints."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import pyvips

from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.hashes import dhash, rgba_to_thumbhash, thumbhash, thumbhash_average_rgba
from tests.pipeline.conftest import run_pipeline


def _solid(rgb: list[int], alpha: int | None = None) -> pyvips.Image:
    image = (pyvips.Image.black(40, 30) + rgb).cast("uchar").copy(interpretation="srgb")
    return image.bandjoin(alpha) if alpha is not None else image


def test_thumbhash_encodes_the_average_colour() -> None:
    hash_ = base64.b64decode(thumbhash(_solid([220, 30, 40]), 32))
    r, g, b, a = thumbhash_average_rgba(hash_)
    assert abs(r - 220 / 255) < 0.05 and abs(g - 30 / 255) < 0.05 and abs(b - 40 / 255) < 0.06
    assert a == 1.0
    assert hash_[4] & 0x80  # landscape flag: 40x30


def test_thumbhash_keeps_transparency() -> None:
    hash_ = base64.b64decode(thumbhash(_solid([0, 0, 255], alpha=64), 32))
    assert hash_[2] & 0x80  # has-alpha flag
    assert thumbhash_average_rgba(hash_)[3] < 0.5


def test_dhash_finds_near_duplicates(options: PipelineOptions, corpus: Path) -> None:
    data = (corpus / "real/Olympus_PEN_E-P3.jpg").read_bytes()
    original = run_pipeline(data, options, "quick_processing").metadata["phash"]
    recompressed = pyvips.Image.new_from_buffer(data, "").resize(0.5).write_to_buffer(".jpg", Q=40)
    near = run_pipeline(bytes(recompressed), options, "quick_processing").metadata["phash"]
    other_data = (corpus / "real/Kodak_DC240.jpg").read_bytes()
    other = run_pipeline(other_data, options, "quick_processing").metadata["phash"]

    def distance(a: str, b: str) -> int:
        return bin(int(a, 16) ^ int(b, 16)).count("1")

    assert distance(original, near) <= 6
    assert distance(original, other) >= 16


def test_dhash_is_16_hex_digits() -> None:
    gradient = pyvips.Image.xyz(64, 64)[0].cast("uchar").copy(interpretation="b-w")
    # brightening left to right: no pixel is brighter than its right-hand neighbour
    assert dhash(gradient) == "0" * 16
    assert dhash(gradient.fliphor()) == "f" * 16


def _pattern(w: int, h: int) -> bytes:
    return bytes(
        v
        for y in range(h)
        for x in range(w)
        for v in ((x * 37 + y * 11) % 256, (y * 53) % 256, (x * y * 7) % 256, 255)
    )


@pytest.mark.parametrize(
    ("w", "h", "expected"),
    [
        (32, 24, "HhgGFYZVZVZgZ3dihjZ3c/+XfPiH"),
        (24, 32, "HhgGFQRFRnN3B2dndnNoN/6rdsb4"),
        (32, 32, "HhgGDwZVZVVzd3dwd2dnKId2879Kd3wP"),
        (7, 3, "EIoOI5pwd3eCiHiIcFUHt4g="),
    ],
)
def test_opaque_thumbhash_keeps_every_bit(w: int, h: int, expected: str) -> None:
    # Pinned from the general alpha formulas (before the opaque shortcut, #26): a
    # fingerprint that moved would no longer match the photos already catalogued.
    assert base64.b64encode(rgba_to_thumbhash(w, h, _pattern(w, h))).decode() == expected


def test_thumbhash_without_alpha_equals_it_with_opaque_alpha(corpus: Path) -> None:
    for name in ("Kodak_DC240.jpg", "Canon_EOS_7D.jpg", "hopper.tif", "kimono.crop.png"):
        tiny = pyvips.Image.new_from_file(str(corpus / "real" / name)).thumbnail_image(32)
        tiny = tiny.copy_memory()
        rgba = bytes(tiny.bandjoin(255).write_to_memory())
        expected = base64.b64encode(rgba_to_thumbhash(tiny.width, tiny.height, rgba)).decode()
        assert thumbhash(tiny, 32) == expected, name


def test_thumbhash_rounds_halves_up_as_the_reference_does() -> None:
    # A 5:14 portrait: the reference's Math.round(7 * 5 / 14) = Math.round(2.5) = 3 luma
    # columns (Python's round would give 2), stored in the low bits of the fourth byte.
    image = (pyvips.Image.xyz(25, 70)[0] * 10).cast("uchar").copy(interpretation="b-w")
    hash_ = base64.b64decode(thumbhash(image, 100))
    assert not hash_[4] & 0x80 and hash_[3] & 0x07 == 3


def test_dhash_sees_transparent_pixels_as_the_white_they_are_shown_on() -> None:
    # Left half opaque black; right half fully transparent over a hidden pattern.
    x = pyvips.Image.xyz(64, 64)[0]
    hidden = (x * 97 % 256).cast("uchar")
    left = x < 32
    rgb = left.ifthenelse([0, 0, 0], hidden.bandjoin([hidden, hidden])).cast("uchar")
    image = rgb.bandjoin(left.ifthenelse(255, 0).cast("uchar")).copy(interpretation="srgb")
    shown = left.ifthenelse([0, 0, 0], [255, 255, 255]).cast("uchar")
    assert dhash(image) == dhash(shown.copy(interpretation="srgb"))
