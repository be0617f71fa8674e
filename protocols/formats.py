"""Which image formats we accept, told apart by magic bytes, never by name or extension,
and the media type each is stored and served as: one table for the api (uploads and tus),
the pipeline and the client library. Plain Python, so sniffing loads no decoder."""

from __future__ import annotations

from typing import Final

#: Every format the pipeline decodes. SVG, PDF, BMP and the rest are refused outright.
ACCEPTED: Final = ("jpeg", "png", "webp", "gif", "tiff", "heif", "avif")

#: How many leading bytes :func:`sniff_format` needs at most.
SNIFF_BYTES: Final = 64

#: Sniffed format → the media type we store and serve. ``image/heif`` for every HEIF that
#: is not AVIF: the sniffed brands include generic ``mif1`` files, and ``image/heic`` names
#: only HEVC-coded ones.
CONTENT_TYPES: Final = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "heif": "image/heif",
    "avif": "image/avif",
}

EXTENSIONS: Final = {
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "gif": "gif",
    "tiff": "tif",
    "heif": "heic",
    "avif": "avif",
}

_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})
_HEIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def sniff_format(head: bytes) -> str | None:
    """The accepted format these leading bytes (64 are enough) start, or ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[4:8] == b"ftyp":
        return _sniff_isobmff(head)
    return None


def _sniff_isobmff(head: bytes) -> str | None:
    # ftyp box: size(4) 'ftyp' major(4) minor_version(4) compatible brands(4 each).
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size if size >= 16 else len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]
    # AVIF files usually list 'mif1' too, so the AV1 brands decide first.
    if any(b in _AVIF_BRANDS for b in brands):
        return "avif"
    if any(b in _HEIF_BRANDS for b in brands):
        return "heif"
    return None
