"""A cancelled stage ends as a timeout (RESOURCE, retried), never as a corrupt photo
(DATA, failed for good), wherever in the one decode the cancellation lands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import pyvips

from filmstrip.errors import Category, ResourceError
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext


class CancelledWhileDecoding(StageContext):
    """Cancelled the moment the decode starts computing, as a deadline would be."""

    decodes = 0

    @contextmanager
    def watch(self, image: pyvips.Image) -> Iterator[pyvips.Image]:
        self.decodes += 1
        self.cancel()
        with super().watch(image) as watched:
            yield watched


def test_a_decode_killed_by_the_deadline_is_a_timeout(
    options: PipelineOptions, corpus: Path
) -> None:
    ctx = CancelledWhileDecoding((corpus / "real/Olympus_PEN_E-P3.jpg").read_bytes(), options)
    with pytest.raises(ResourceError) as info:
        ctx.rendition()
    assert info.value.code == "stage_timeout" and info.value.category is Category.RESOURCE
    assert ctx.decodes == 1 and ctx.aborted


def test_a_cancelled_context_does_not_start_the_decode(
    options: PipelineOptions, corpus: Path
) -> None:
    ctx = CancelledWhileDecoding((corpus / "real/Olympus_PEN_E-P3.jpg").read_bytes(), options)
    ctx.header()
    ctx.cancel()
    with pytest.raises(ResourceError) as info:
        ctx.rendition()
    assert info.value.code == "stage_timeout"
    assert ctx.decodes == 0
