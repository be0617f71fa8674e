"""validation: accepted format and limits from the header, then the one checked decode;
records the header's facts (size, format, …) that every photo's metadata has."""

from __future__ import annotations

from typing import Any

from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.plan import OUTPUTS
from filmstrip.pipeline.stages.metadata import add_header_facts


class Validation:
    """Refuse anything we cannot or should not decode, before any pixel is allocated;
    then decode (shared with later stages) with ``fail_on`` so corrupt data fails here."""

    name = "validation"
    outputs = OUTPUTS[name]

    def run(self, ctx: StageContext) -> dict[str, Any]:
        header = ctx.header()
        ctx.rendition()
        # The header's facts go into the metadata here, so a pipeline without the metadata
        # stage (quick_processing) still records the photo's size, format and the rest.
        add_header_facts(ctx)
        width, height = header.display_size
        return {"format": header.format, "width": width, "height": height, "frames": header.frames}
