"""The size a file's own header declares, read by hand for when the decoder will not open it.

libjpeg refuses an edge over 65500 px and libnsgif a zero-sized or oversized GIF screen
with their own errors ("Maximum supported image dimension", "Unexpected end of GIF
source data"), before libvips has a header to give us: a client was then told its GIF
bomb was truncated. Reading the few header bytes ourselves lets the limits say what is
wrong with such a file.
"""

from __future__ import annotations

import struct

from filmstrip.pipeline.png_text import png_chunks

# JPEG start-of-frame markers: C0-CF but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def declared_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Width and height the header of ``data`` (sniffed as ``fmt``) claims, or ``None``
    when the format is not read here or the header is not there to read."""
    if fmt == "jpeg":
        return _jpeg(data)
    if fmt == "gif":
        return _gif(data)
    if fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2  # past SOI
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame: no size declared
            return None
        at += 2 + length
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    if width == 0 or height == 0:
        return width, height  # the logical screen holds no pixels, whatever the frames say
    # libnsgif grows the canvas to hold every frame: the first frame's extent counts too.
    frame = _first_frame(data)
    if frame is not None:
        width, height = max(width, frame[0]), max(height, frame[1])
    return width, height


def _first_frame(data: bytes) -> tuple[int, int] | None:
    """The right and bottom edge of the first image descriptor, or ``None``."""
    if len(data) < 13:
        return None
    at = 13
    if data[10] & 0x80:  # global colour table
        at += 3 * (2 << (data[10] & 0x07))
    while at < len(data):
        block = data[at]
        if block == 0x2C:  # image descriptor
            if at + 9 > len(data):
                return None
            left, top, width, height = struct.unpack("<HHHH", data[at + 1 : at + 9])
            return left + width, top + height
        if block != 0x21 or at + 2 > len(data):  # only extensions may come before it
            return None
        at += 2  # introducer and label, then sub-blocks up to a zero length
        while at < len(data) and data[at]:
            at += data[at] + 1
        at += 1
    return None


def ends_early(data: bytes, fmt: str) -> bool:
    """Whether ``data`` is a PNG whose well-formed chunks stop before its image end (IEND):
    a cut file, where libpng says only "read error"."""
    if fmt != "png":
        return False
    for kind, _body, _length in png_chunks(data):
        if kind == b"IEND" or not kind.isalpha():  # the end, or garbage: not a cut file
            return False
    return True
