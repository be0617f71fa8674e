"""libvips as the worker sets it up: only the loaders of the formats we accept run."""

from __future__ import annotations

import pytest
import pyvips

from filmstrip.pipeline import PipelineOptions


def test_a_trusted_loader_we_do_not_list_is_blocked(options: PipelineOptions) -> None:
    # libvips' matrix text format: a loader libvips trusts, for a format we do not accept.
    matrix = pyvips.Image.black(2, 2).write_to_buffer(".mat")
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_source(pyvips.Source.new_from_memory(matrix), "").avg()
    # while a loader that is listed still runs
    png = pyvips.Image.black(2, 2).write_to_buffer(".png")
    source = pyvips.Source.new_from_memory(png)
    assert pyvips.Image.new_from_source(source, "").avg() == 0
