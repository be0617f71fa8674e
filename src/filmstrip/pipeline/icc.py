"""Reading an embedded ICC profile's description without building a colour transform."""

from __future__ import annotations

import struct

# Profiles whose transform to sRGB is the identity: most cameras and phones embed one.
_SRGB_PREFIXES = ("sRGB IEC61966-2", "sRGB built-in")


def description(icc: bytes | None) -> str | None:
    """The profile's ``desc`` tag (v2 text or v4 multi-language), or ``None``."""
    if not icc or len(icc) < 132:
        return None
    try:
        (count,) = struct.unpack_from(">I", icc, 128)
        for i in range(min(count, 256)):
            sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            if sig == b"desc":
                return _text(icc[offset : offset + size])
    except struct.error:
        return None
    return None


def is_srgb(icc: bytes | None) -> bool:
    """True when the profile is standard sRGB, so converting to sRGB would change nothing."""
    name = description(icc)
    return name is not None and name.startswith(_SRGB_PREFIXES)


def _text(tag: bytes) -> str | None:
    kind = tag[:4]
    if kind == b"desc" and len(tag) >= 12:
        (length,) = struct.unpack_from(">I", tag, 8)
        raw = tag[12 : 12 + length].split(b"\0", 1)[0]
        return raw.decode("latin-1").strip() or None
    if kind == b"mluc" and len(tag) >= 28:
        records, _record_size = struct.unpack_from(">II", tag, 8)
        if records < 1:
            return None
        length, offset = struct.unpack_from(">II", tag, 20)
        raw = tag[offset : offset + length]
        return raw.decode("utf-16-be", errors="replace").strip("\0 ") or None
    return None
