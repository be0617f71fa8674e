"""The stage registry: each stage of the plan (:mod:`filmstrip.pipeline.plan`) by name."""

from __future__ import annotations

from typing import Any, Protocol

from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.plan import check_stage
from filmstrip.pipeline.stages.metadata import Metadata
from filmstrip.pipeline.stages.optimization import Optimization
from filmstrip.pipeline.stages.thumbnails import Thumbnails
from filmstrip.pipeline.stages.validation import Validation


class Stage(Protocol):
    """One step of a pipeline. ``run`` BLOCKS (CPU and libvips work): call it through
    :func:`filmstrip.pipeline.runner.run_stage` or ``run_blocking``, never on the event loop."""

    @property
    def name(self) -> str: ...

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of the derivatives this stage may write (none for most stages)."""
        ...

    def run(self, ctx: StageContext) -> dict[str, Any]:
        """Do the work on ``ctx``; return a small JSON-able summary for the stage event."""
        ...


STAGES: dict[str, Stage] = {
    stage.name: stage for stage in (Validation(), Metadata(), Thumbnails(), Optimization())
}


def get_stage(name: str) -> Stage:
    """The registered stage called ``name``; :class:`LogicError` if there is none."""
    return STAGES[check_stage(name)]
