"""Magic-byte sniffing: the api trusts it with the first chunk of every upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from filmstrip.protocols.formats import SNIFF_BYTES, sniff_format

EXPECTED = {"jpeg": "jpeg", "mpo (jpeg)": "jpeg", "png": "png", "webp": "webp", "gif": "gif"}
EXPECTED |= {"tiff": "tiff", "heic": "heif", "avif": "avif"}


def test_every_real_file_is_sniffed_from_64_bytes(
    corpus: Path, manifest: list[dict[str, Any]]
) -> None:
    for entry in manifest:
        if entry["kind"] != "real":
            continue
        head = (corpus / entry["path"]).read_bytes()[:SNIFF_BYTES]
        assert sniff_format(head) == EXPECTED[entry["format"]], entry["path"]


def test_content_wins_over_the_extension(corpus: Path) -> None:
    assert sniff_format((corpus / "bad/jpeg_with_png_extension.png").read_bytes()[:64]) == "jpeg"


@pytest.mark.parametrize(
    "name", ["script.svg", "html_with_script.jpg", "photo.jpg", "empty.jpg", "bmp-invalid-bpp.bmp"]
)
def test_non_images_are_not_sniffed(corpus: Path, name: str) -> None:
    assert sniff_format((corpus / "bad" / name).read_bytes()[:64]) is None


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n", None),
        (b"<?xml version='1.0'?><svg", None),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "avif"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "avif"),
        (b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom", None),  # an MP4 video
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
    ],
)
def test_magic_bytes(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected
