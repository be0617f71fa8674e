"""EXIF from a PNG's ImageMagick raw profile text chunk: read from each kind of text chunk,
bounded when inflated, and nothing from a chunk that is not one."""

from __future__ import annotations

import zlib
from pathlib import Path

from filmstrip.pipeline.exif import orientation_from_blob
from filmstrip.pipeline.png_text import MAX_TEXT, raw_profile_exif

PNG = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def test_the_corpus_file_says_orientation_3(corpus: Path) -> None:
    data = (corpus / "real/exif_imagemagick_orientation.png").read_bytes()
    exif = raw_profile_exif(data)
    assert exif is not None and exif.startswith(b"Exif\x00\x00")
    assert orientation_from_blob(exif) == 3


def test_a_bomb_in_a_ztxt_chunk_is_not_inflated_past_the_bound() -> None:
    # 64 MiB of hex digits in 64 KiB: the text claims far more than the bound lets through.
    text = b"\nexif\n%8d\n" % (32 * 1024 * 1024) + b"0" * (64 * 1024 * 1024)
    body = b"Raw profile type exif\x00\x00" + zlib.compress(text, 9)
    assert len(body) < 128 * 1024
    assert raw_profile_exif(PNG + _chunk(b"zTXt", body) + _chunk(b"IEND", b"")) is None
    assert MAX_TEXT <= 256 * 1024


def test_other_text_and_broken_profiles_give_nothing() -> None:
    comment = _chunk(b"tEXt", b"Comment\x00Raw profile type exif")
    broken = _chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n  4\nzz\n")
    cut = _chunk(b"tEXt", b"Raw profile type exif\x00\nexif\n  40\n4578\n")
    for data in (PNG + comment, PNG + broken, PNG + cut, PNG + comment[:9], b"GIF89a"):
        assert raw_profile_exif(data) is None
