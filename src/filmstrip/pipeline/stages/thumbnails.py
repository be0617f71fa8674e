"""thumbnails: the small and the screen-sized rendition, both from the one decode.

Size rule: ``thumbnail_size`` and ``preview_size`` bound the **longer** edge (the image
fits in a square box of that side), aspect ratio kept, never enlarged. We chose the
longer edge (unlike Immich's shorter-edge preview) so a derivative's size is bounded
whatever the aspect ratio: a 20000x400 panorama cannot produce a 72000-px "preview".
"""

from __future__ import annotations

from typing import Any

from filmstrip.pipeline import derivatives
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.plan import OUTPUTS
from filmstrip.pipeline.stages.metadata import add_fingerprints


class Thumbnails:
    """Make ``thumbnail`` and ``preview``: upright, sRGB, first frame, metadata-free."""

    name = "thumbnails"
    outputs = OUTPUTS[name]

    def run(self, ctx: StageContext) -> dict[str, Any]:
        opts = ctx.options
        summary: dict[str, Any] = {}
        for name, size, fmt, quality in (
            ("preview", opts.preview_size, opts.preview_format, opts.preview_quality),
            ("thumbnail", opts.thumbnail_size, opts.thumbnail_format, opts.thumbnail_quality),
        ):
            ctx.check_cancelled()
            source = ctx.small() if size == opts.thumbnail_size else ctx.rendition()
            scale = size / max(source.width, source.height)
            image = source.resize(scale, kernel="lanczos3") if scale < 1 else source
            derivative = derivatives.make(name, image, fmt, quality)
            ctx.derivatives[name] = derivative
            summary[name] = {
                "width": derivative.width,
                "height": derivative.height,
                "bytes": len(derivative.data),
            }
        # Placeholders belong with the renditions; quick_processing has no metadata stage.
        add_fingerprints(ctx)
        return summary
