"""Hostile files made on the fly: truncations, bit flips, lying headers, bombs, polyglots
and things that are not photos at all.

Each is a :class:`Hostile` saying whether it must be refused (by the api or as DATA by the
worker) or may also be processed (a bit flip can land in a byte nobody reads)."""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    must_reject: bool


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, *, rows: int | None = None) -> bytes:
    """An 8-bit grey PNG whose header says ``width`` x ``height``; its data holds ``rows``
    rows of zeros (all of them by default), compressed row by row so it stays tiny."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    out = bytearray()
    for _ in range(height if rows is None else rows):
        out += packer.compress(row)
    out += packer.flush()
    sig = b"\x89PNG\r\n\x1a\n"
    return (
        sig + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(out)) + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF) rewritten to claim ``width`` x ``height``."""
    at = 2
    while at + 4 <= len(jpeg):
        marker, length = jpeg[at + 1], struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            dims = struct.pack(">HH", height, width)
            return jpeg[: at + 5] + dims + jpeg[at + 9 :]
        at += 2 + length
    raise ValueError("no SOF marker")


def generated(corpus: Path, seed: int = 8) -> list[Hostile]:
    """Every generated hostile file (deterministic for a seed)."""
    rng = random.Random(seed)
    jpeg = (corpus / "real/Sony_Cybershot.jpg").read_bytes()
    png = (corpus / "real/plum-blossom-large.png").read_bytes()
    out: list[Hostile] = []
    for label, source in (("jpeg", jpeg), ("png", png)):
        # Past the sniffed magic, short of the end: the header parses, the pixels do not.
        for offset in sorted(rng.sample(range(64, len(source) - 16), 10)):
            out.append(Hostile(f"truncated-{label}-{offset}", source[:offset], True))
        for i in range(5):
            flipped = bytearray(source)
            for _ in range(3):
                at = rng.randrange(8, 400)
                flipped[at] ^= 1 << rng.randrange(8)
            out.append(Hostile(f"bitflip-{label}-{i}", bytes(flipped), False))
    out += [
        Hostile("png-1x1", png_claiming(1, 1), False),
        Hostile("png-65535x65535-header", png_claiming(65535, 65535, rows=2), True),
        Hostile("jpeg-claims-64250x64250", jpeg_claiming(jpeg, 64250, 64250), True),
        # libjpeg decodes the first 1x1 of the scan without a warning: harmless either way.
        Hostile("jpeg-claims-1x1", jpeg_claiming(jpeg, 1, 1), False),
        # 30,000 x 30,000 of zeros in ~1 MB: over the pixel cap, refused from the header.
        Hostile("png-bomb-over-cap", png_claiming(30000, 30000, rows=3000), True),
        # Under the cap but 25 Mpx from a few kB: processed without ballooning memory.
        Hostile("png-bomb-under-cap", png_claiming(5000, 5000), False),
        Hostile("jpeg+zip-polyglot", jpeg + _zip({"evil.html": b"<script>alert(1)</script>"}),
                False),
        Hostile("gif+js-polyglot", b"GIF89a/*\x00\x00\x00\x00*/=1;alert(document.domain);//",
                True),
        Hostile("svg-with-script", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
                b"<script>alert(2)</script></svg>", True),
        Hostile("html-named-jpg", b"<!DOCTYPE html><html><script>alert(1)</script></html>", True),
        Hostile("png-header-jpeg-body", b"\x89PNG\r\n\x1a\n" + jpeg[2:], True),
    ]  # fmt: skip
    return out


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()
