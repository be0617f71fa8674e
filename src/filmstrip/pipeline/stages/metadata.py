"""metadata: what the photo is (size, format, colour, camera EXIF) and its fingerprints."""

from __future__ import annotations

import hashlib
from typing import Any

from filmstrip.pipeline import icc
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.exif import exif_from_blob, exif_from_tiff
from filmstrip.pipeline.hashes import dhash, thumbhash
from filmstrip.pipeline.plan import OUTPUTS


class Metadata:
    """Fill ``ctx.metadata`` with the catalog's processing metadata."""

    name = "metadata"
    outputs = OUTPUTS[name]

    def run(self, ctx: StageContext) -> dict[str, Any]:
        header = ctx.header()
        width, height = header.display_size
        exif = exif_from_blob(header.exif)
        if not exif and header.format == "tiff":
            exif = exif_from_tiff(ctx.data)
        ctx.check_cancelled()
        add_header_facts(ctx)
        ctx.metadata.update({"exif": exif, "sha256": hashlib.sha256(ctx.data).hexdigest()})
        add_fingerprints(ctx)
        return {
            "width": width,
            "height": height,
            "format": header.format,
            "camera": " ".join(v for v in (exif.get("make"), exif.get("model")) if v) or None,
            "gps": "gps" in exif,
        }


def add_header_facts(ctx: StageContext) -> None:
    """What the validated header says about every photo, whatever its pipeline: upright
    size, format, bytes, alpha, frames, colour space, ICC profile, orientation. No pixels
    decoded; idempotent (validation and metadata both call it)."""
    header = ctx.header()
    width, height = header.display_size
    ctx.metadata.update(
        {
            "width": width,
            "height": height,
            "format": header.format,
            "bytes": len(ctx.data),
            "has_alpha": header.has_alpha,
            "animated": header.animated,
            "frames": header.frames,
            "color_space": header.interpretation,
            "icc_profile": icc_name(header.icc),
            "orientation": header.orientation,
        }
    )


def add_fingerprints(ctx: StageContext) -> None:
    """ThumbHash and dHash from the shared small rendition (no extra decode); idempotent."""
    if "thumbhash" in ctx.metadata and "phash" in ctx.metadata:
        return
    small = ctx.small()
    size = ctx.options.thumbhash_size
    scale = size / max(small.width, small.height)
    # Both fingerprints read the same tiny image: one resize instead of two.
    tiny = small.resize(scale, gap=1.0).copy_memory() if scale < 1.0 else small
    ctx.metadata["thumbhash"] = thumbhash(tiny, size)
    ctx.metadata["phash"] = dhash(tiny)


def icc_name(profile: bytes | None) -> str | None:
    """The description inside an ICC profile, or ``None``."""
    if not profile:
        return None
    name = icc.description(profile)
    return name[:128] if name else "unknown"
