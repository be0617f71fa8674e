"""Camera facts from an EXIF block, tolerant of the broken blocks real cameras write."""

from __future__ import annotations

import io
import math
from datetime import datetime
from typing import Any

from PIL import Image

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825

_MAKE, _MODEL, _ORIENTATION = 0x010F, 0x0110, 0x0112
_EXPOSURE_TIME, _F_NUMBER, _ISO = 0x829A, 0x829D, 0x8827
_DATE_ORIGINAL, _OFFSET_ORIGINAL, _SUBSEC_ORIGINAL = 0x9003, 0x9011, 0x9291
_DATE_TIME = 0x0132
_FOCAL_LENGTH, _LENS_MAKE, _LENS_MODEL = 0x920A, 0xA433, 0xA434
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_ALT_REF, _GPS_ALT = 1, 2, 3, 4, 5, 6


def exif_from_blob(blob: bytes | None) -> dict[str, Any]:
    """Our EXIF fields from a raw EXIF block (with or without the ``Exif\\0\\0`` prefix)."""
    if not blob:
        return {}
    exif = Image.Exif()
    try:
        exif.load(blob)
    except Exception:
        return {}
    return _fields(exif)


def orientation_from_blob(blob: bytes) -> int:
    """The orientation (1-8) a raw EXIF block records; 1 when absent, out of range or
    unreadable."""
    exif = Image.Exif()
    try:
        exif.load(blob)
        value = int(exif.get(_ORIENTATION, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def exif_from_tiff(data: bytes) -> dict[str, Any]:
    """Our EXIF fields from a TIFF's own tags (TIFF keeps Make/Model in IFD0, not a blob)."""
    try:
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as image:
            return _fields(image.getexif())
    except Exception:
        return {}


def _fields(exif: Image.Exif) -> dict[str, Any]:
    sub = _ifd(exif, _EXIF_IFD)
    gps = _ifd(exif, _GPS_IFD)
    out: dict[str, Any] = {
        "make": _text(exif.get(_MAKE)),
        "model": _text(exif.get(_MODEL)),
        "lens": _text(sub.get(_LENS_MODEL)) or _text(sub.get(_LENS_MAKE)),
        "taken_at": _taken_at(sub, exif),
        "exposure_time": _number(sub.get(_EXPOSURE_TIME)),
        "f_number": _number(sub.get(_F_NUMBER)),
        "iso": _integer(sub.get(_ISO)),
        "focal_length": _number(sub.get(_FOCAL_LENGTH)),
        "gps": _gps(gps),
    }
    return {key: value for key, value in out.items() if value is not None}


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:
        return {}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:256] or None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple | list):
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(number, 6) if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    # ISO 0 is what some cameras write for "unknown".
    return int(number) if number is not None and number > 0 else None


def _taken_at(sub: dict[int, Any], ifd0: Image.Exif) -> str | None:
    raw = _text(sub.get(_DATE_ORIGINAL)) or _text(ifd0.get(_DATE_TIME))
    if raw is None:
        return None
    try:
        taken = datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    stamp = taken.isoformat()
    subsec = _text(sub.get(_SUBSEC_ORIGINAL))
    if subsec and subsec.isdigit():
        stamp += "." + subsec[:6]
    offset = _text(sub.get(_OFFSET_ORIGINAL))
    if offset and len(offset) == 6 and offset[0] in "+-" and offset[3] == ":":
        stamp += offset
    return stamp


def _gps(gps: dict[int, Any]) -> dict[str, float] | None:
    lat = _degrees(gps.get(_GPS_LAT), _text(gps.get(_GPS_LAT_REF)), "S")
    lon = _degrees(gps.get(_GPS_LON), _text(gps.get(_GPS_LON_REF)), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    out = {"lat": lat, "lon": lon}
    alt = _number(gps.get(_GPS_ALT))
    if alt is not None:
        ref = gps.get(_GPS_ALT_REF)
        below = ref in (1, b"\x01") or (isinstance(ref, bytes) and ref[:1] == b"\x01")
        out["alt"] = round(-alt if below else alt, 2)
    return out


def _degrees(value: Any, ref: str | None, negative: str) -> float | None:
    if not isinstance(value, tuple | list) or len(value) != 3:
        return None
    d, m, s = (_number(v) for v in value)
    if d is None:
        return None
    # Cameras that store minutes with decimals often write the seconds as 0/0.
    m, s = m or 0.0, s or 0.0
    degrees = d + m / 60 + s / 3600
    return round(-degrees if ref == negative else degrees, 7)
