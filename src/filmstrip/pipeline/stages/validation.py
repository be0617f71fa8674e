"""validation: accepted format and limits from the header, then the one checked decode."""

from __future__ import annotations

from typing import Any

from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.plan import OUTPUTS


class Validation:
    """Refuse anything we cannot or should not decode, before any pixel is allocated;
    then decode (shared with later stages) with ``fail_on`` so corrupt data fails here."""

    name = "validation"
    outputs = OUTPUTS[name]

    def run(self, ctx: StageContext) -> dict[str, Any]:
        header = ctx.header()
        ctx.rendition()
        width, height = header.display_size
        return {"format": header.format, "width": width, "height": height, "frames": header.frames}
