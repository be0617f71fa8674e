"""The processing pipeline: named pipelines built from a registry of stages.

Stages know nothing of Redis, HTTP, the catalog or the blob store: bytes and
:class:`PipelineOptions` in, ``ctx.metadata`` and ``ctx.derivatives`` out. Every stage's
``run`` blocks; the worker calls ``runner.run_stage`` (bounded pool + timeout). Importing
this package loads no decoder (the api decides jobs from the plan); the stages, their
context and libvips' setup are in ``registry``, ``context``, ``runner`` and ``vips``.

Pipelines: ``full_processing`` = validation, metadata, thumbnails, optimization;
``quick_processing`` = validation, thumbnails. The stages in :data:`DEFERRABLE`
(optimization) may run after the photo is ready, in a low-priority follow-up job: the
worker decides that (``defer_optimization``), not the stages.

Derivatives (``ctx.derivatives``): ``thumbnail`` (WebP, 256 px), ``preview`` (JPEG,
1440 px), ``optimized`` (full-size WebP, only when smaller than the original) and
``optimized_avif`` (only with ``optimize_avif``). Sizes bound the **longer** edge, never
enlarge; every derivative is upright (EXIF orientation applied), sRGB, first frame of an
animation (``optimized`` stays animated), and carries no metadata at all (no EXIF, GPS,
XMP or ICC). All renditions and the fingerprints come from one shrink-on-load decode.

Metadata keys (``ctx.metadata``, JSON-able, the catalog's ``processing_metadata``; the
api's ``PhotoMetadata`` in protocols/http.py and docs/api.md document them for clients, so
a new key goes there too). Validation writes the header's facts (``width`` …
``orientation``), so every pipeline has them; ``exif`` and ``sha256`` come from the
metadata stage; ``thumbhash``/``phash`` from whichever of metadata and thumbnails runs first:

- ``width``, ``height``: pixels after EXIF orientation; ``format``: jpeg, png, webp, gif,
  tiff, heif or avif (from magic bytes); ``bytes``: size of the original
- ``has_alpha``, ``animated`` (GIF/WebP with more than one frame), ``frames``
- ``color_space`` (libvips interpretation, e.g. ``srgb``, ``cmyk``, ``b-w``),
  ``icc_profile`` (the embedded profile's description, or null)
- ``orientation``: EXIF orientation 1-8 (1 when absent or out of range)
- ``exif``: ``make``, ``model``, ``lens``, ``taken_at`` (ISO 8601, with the offset when
  the camera recorded one), ``exposure_time`` (s), ``f_number``, ``iso``,
  ``focal_length`` (mm), ``gps`` {``lat``, ``lon``, ``alt`` (m)}; absent keys are omitted
- ``sha256`` of the original (hex), ``thumbhash`` (base64 ThumbHash),
  ``phash`` (64-bit dHash, 16 hex digits)
- ``optimization``: ``format``, ``bytes``, ``original_bytes``, ``bytes_saved``, ``kept``,
  ``animated``

Policies: orientation comes from EXIF wherever the file keeps it: JPEG APP1, WebP's EXIF
chunk, TIFF's tags, PNG's ``eXIf`` (all read by libvips) and the "Raw profile type exif"
text chunk ImageMagick writes into PNGs (read in ``png_text``; libvips ignores it, Pillow
and ImageMagick honour it, so the photo is shown as the camera meant); HEIC is decoded by
libheif via pillow-heif, whose container rotations (irot/imir) are applied by libheif, as
are AVIF's (HEIF's rule: those, not EXIF, say how to turn it); decoding uses libvips
``fail_on=warning`` (sharp's default), so files libjpeg/libpng call corrupt are refused.
"""

from __future__ import annotations

from filmstrip.pipeline.options import PipelineOptions
from filmstrip.pipeline.plan import (
    DEFERRABLE,
    PIPELINES,
    resolve_stages,
    split_deferred,
    stage_making,
)

__all__ = [
    "DEFERRABLE",
    "PIPELINES",
    "PipelineOptions",
    "resolve_stages",
    "split_deferred",
    "stage_making",
]
