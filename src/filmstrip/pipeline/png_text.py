"""EXIF that a PNG keeps in a text chunk, where libvips does not look.

ImageMagick (before PNG had ``eXIf``, and still by default) writes a photo's EXIF as the
text chunk "Raw profile type exif" (or "... APP1"): ``\\n<name>\\n<length>\\n<hex>``, in a
``tEXt``, ``zTXt`` or ``iTXt`` chunk. libvips reads only ``eXIf``, so such a photo's
orientation would be lost. Text is inflated to at most :data:`MAX_TEXT` bytes: a zTXt
chunk may be a decompression bomb.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEYWORDS = (b"Raw profile type exif", b"Raw profile type APP1")
#: The most text inflated from one chunk: the hex of a 64 KiB EXIF block (JPEG's limit),
#: with its line breaks, and room to spare.
MAX_TEXT = 256 * 1024


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    """Each chunk of the PNG ``data`` past its signature whose header is there: its type,
    its body (short when the file is cut inside it) and the length the header declares."""
    at = len(_SIGNATURE)
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        yield data[at + 4 : at + 8], data[at + 8 : at + 8 + length], length
        at += 12 + length  # length, type, body, CRC


def raw_profile_exif(data: bytes) -> bytes | None:
    """The EXIF block of the first raw profile text chunk in the PNG ``data``; None when
    there is none or it cannot be read."""
    if not data.startswith(_SIGNATURE):
        return None
    for kind, body, length in png_chunks(data):
        if kind == b"IEND" or len(body) < length:
            return None
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            text = _profile_text(kind, body)
            if text is not None:
                return _decode_profile(text)
    return None


def _profile_text(kind: bytes, body: bytes) -> bytes | None:
    """The text of a raw profile chunk (inflated if need be); None for any other chunk."""
    keyword, _, rest = body.partition(b"\x00")
    if keyword not in _KEYWORDS:
        return None
    if kind == b"tEXt":
        return rest[:MAX_TEXT]
    if kind == b"zTXt":
        return _inflate(rest[1:])  # after the compression method byte (0: zlib)
    # iTXt: compression flag, method, language tag\0, translated keyword\0, text.
    if len(rest) < 2:
        return None
    compressed, text = rest[0], rest[2:]
    text = text.split(b"\x00", 2)[-1]
    return _inflate(text) if compressed else text[:MAX_TEXT]


def _inflate(compressed: bytes) -> bytes | None:
    try:
        return zlib.decompressobj().decompress(compressed, MAX_TEXT)
    except zlib.error:
        return None


def _decode_profile(text: bytes) -> bytes | None:
    """``\\n<name>\\n<length>\\n<hex digits in lines>`` → the bytes it holds."""
    parts = text.split()
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    length = int(parts[1])
    try:
        raw = bytes.fromhex(b"".join(parts[2:]).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return raw[:length] if 0 < length <= len(raw) else None
