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


def _profile(exif: bytes) -> bytes:
    return b"\nexif\n%8d\n" % len(exif) + exif.hex().encode()


def _png(kind: bytes, body: bytes) -> bytes:
    return PNG + _chunk(kind, body) + _chunk(b"IEND", b"")


# A big-endian EXIF block with one tag: orientation 6.
EXIF_6 = bytes.fromhex("4578696600004d4d002a00000008000101120003000000010006000000000000")


def test_the_app1_profile_and_each_text_chunk_kind_are_read() -> None:
    text = _profile(EXIF_6)
    for kind, body in (
        (b"tEXt", b"Raw profile type APP1\x00" + text),
        (b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(text)),
        (b"iTXt", b"Raw profile type exif\x00\x01\x00en\x00Exif\x00" + zlib.compress(text)),
        (b"iTXt", b"Raw profile type exif\x00\x00\x00en\x00Exif\x00" + text),
    ):
        assert raw_profile_exif(_png(kind, body)) == EXIF_6, (kind, body[:32])
    assert orientation_from_blob(EXIF_6) == 6


def test_uncompressed_text_is_read_only_up_to_the_bound() -> None:
    # A profile longer than the bound is cut there, and a cut profile gives nothing.
    text = _profile(b"Exif\x00\x00" + b"\x00" * MAX_TEXT)
    for kind, body in (
        (b"tEXt", b"Raw profile type exif\x00" + text),
        (b"iTXt", b"Raw profile type exif\x00\x00\x00en\x00Exif\x00" + text),
    ):
        assert raw_profile_exif(_png(kind, body)) is None, kind


def test_a_profile_gives_the_bytes_it_declares_and_a_cut_chunk_nothing() -> None:
    # The hex holds two bytes more than the declared length: only the declared ones count.
    longer = b"\nexif\n%8d\n" % len(EXIF_6) + (EXIF_6 + b"\xff\xff").hex().encode()
    assert raw_profile_exif(_png(b"tEXt", b"Raw profile type exif\x00" + longer)) == EXIF_6
    # A text chunk the file cuts short is not read, even where the cut spares the hex.
    chunk = _chunk(b"tEXt", b"Raw profile type exif\x00" + _profile(EXIF_6) + b"\n" * 64)
    assert raw_profile_exif(PNG + chunk[:-40]) is None
