"""Pipeline fixtures: libvips configured as the worker configures it, and corpus runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline import resolve_stages as _resolve
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.vips import configure_vips


@pytest.fixture(scope="session")
def options() -> Iterator[PipelineOptions]:
    """Default options, with libvips set up for a server exactly as the worker does."""
    opts = PipelineOptions()
    configure_vips(opts)
    yield opts


def run_pipeline(data: bytes, options: PipelineOptions, pipeline: str) -> StageContext:
    """Run every stage of ``pipeline`` on ``data`` synchronously; return the context."""
    ctx = StageContext(data, options)
    for name in _resolve(pipeline):
        get_stage(name).run(ctx)
    return ctx
