"""Reading an embedded ICC profile's description without building a colour transform."""

from __future__ import annotations

import struct

# Profiles whose transform to sRGB is the identity: most cameras and phones embed one.
_SRGB_PREFIXES = ("sRGB IEC61966-2", "sRGB built-in")

# sRGB's primaries as profiles store them (adapted to D50), and its curve as an ICC
# parametric curve (type 3: Y = (aX + b)^g above d, cX below).
_SRGB_COLORANTS = {
    b"rXYZ": (0.4361, 0.2225, 0.0139),
    b"gXYZ": (0.3851, 0.7169, 0.0971),
    b"bXYZ": (0.1431, 0.0606, 0.7141),
}
_SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
# Tags that make lcms use a lookup table instead of the primaries and curves.
_LUT_TAGS = (b"A2B0", b"A2B1", b"A2B2", b"B2A0", b"B2A1", b"B2A2", b"D2B0", b"B2D0")


def _tags(icc: bytes) -> dict[bytes, bytes]:
    """The profile's tags by signature; empty when the tag table is unreadable."""
    tags: dict[bytes, bytes] = {}
    if len(icc) < 132:
        return tags
    try:
        (count,) = struct.unpack_from(">I", icc, 128)
        for i in range(min(count, 256)):
            sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            tags.setdefault(sig, icc[offset : offset + size])
    except struct.error:
        return {}
    return tags


def description(icc: bytes | None) -> str | None:
    """The profile's ``desc`` tag (v2 text or v4 multi-language), or ``None``."""
    if not icc:
        return None
    tag = _tags(icc).get(b"desc")
    return _text(tag) if tag else None


def is_srgb(icc: bytes | None) -> bool:
    """True when the profile is standard sRGB, so converting to sRGB would change nothing:
    by its name, or by its numbers (sRGB's primaries and curve, whatever it is called:
    Android's Ultra HDR photos say "sRGB Gamut with sRGB Transfer")."""
    if not icc:
        return False
    name = description(icc)
    if name is not None and name.startswith(_SRGB_PREFIXES):
        return True
    return _srgb_by_numbers(icc)


def _srgb_by_numbers(icc: bytes) -> bool:
    if icc[12:24] != b"mntrRGB XYZ ":  # a display profile, RGB data, XYZ connection space
        return False
    tags = _tags(icc)
    if any(sig in tags for sig in _LUT_TAGS):
        return False
    for sig, expected in _SRGB_COLORANTS.items():
        tag = tags.get(sig, b"")
        if len(tag) < 20 or tag[:4] != b"XYZ ":
            return False
        xyz = [v / 65536 for v in struct.unpack_from(">3i", tag, 8)]
        if any(abs(a - b) > 0.001 for a, b in zip(xyz, expected, strict=True)):
            return False
    return all(_srgb_curve(tags.get(sig, b"")) for sig in (b"rTRC", b"gTRC", b"bTRC"))


def _srgb_curve(tag: bytes) -> bool:
    # Parametric curves only (type 3, or 4 with no offsets): the ones encoders write for
    # sRGB. A sampled 'curv' table is left to lcms, as it was.
    if len(tag) < 12 or tag[:4] != b"para":
        return False
    (kind,) = struct.unpack_from(">H", tag, 8)
    counts = {3: 5, 4: 7}
    if kind not in counts or len(tag) < 12 + 4 * counts[kind]:
        return False
    params = [v / 65536 for v in struct.unpack_from(f">{counts[kind]}i", tag, 12)]
    if kind == 4 and any(abs(v) > 0.0005 for v in params[5:]):
        return False
    return all(abs(a - b) < 0.0005 for a, b in zip(params[:5], _SRGB_CURVE, strict=True))


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
