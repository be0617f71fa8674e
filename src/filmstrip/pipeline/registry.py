"""The stage registry and the named pipelines built from it."""

from __future__ import annotations

from typing import Any, Protocol

from filmstrip.errors import LogicError
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.stages.metadata import Metadata
from filmstrip.pipeline.stages.optimization import Optimization
from filmstrip.pipeline.stages.thumbnails import Thumbnails
from filmstrip.pipeline.stages.validation import Validation


class Stage(Protocol):
    """One step of a pipeline. ``run`` BLOCKS (CPU and libvips work): call it through
    :func:`filmstrip.pipeline.run_stage` or ``run_blocking``, never on the event loop."""

    @property
    def name(self) -> str: ...

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of the derivatives this stage may write (none for most stages)."""
        ...

    def run(self, ctx: StageContext) -> dict[str, Any]:
        """Do the work on ``ctx``; return a small JSON-able summary for the stage event."""
        ...


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    """Add ``stage`` to the registry under its name (replacing one of the same name)."""
    STAGES[stage.name] = stage
    return stage


for _stage in (Validation(), Metadata(), Thumbnails(), Optimization()):
    register_stage(_stage)

PIPELINES: dict[str, list[str]] = {
    "full_processing": ["validation", "metadata", "thumbnails", "optimization"],
    "quick_processing": ["validation", "thumbnails"],
}


# Stages that run after the photo is announced ready, in a low-priority follow-up job:
# what a client waits for (its thumbnails) must not queue behind a full-size re-encode
# that takes 5-10x as long (bench/pipeline_bench.py).
DEFERRABLE: frozenset[str] = frozenset({"optimization"})


def split_deferred(stages: list[str]) -> tuple[list[str], list[str]]:
    """``stages`` split into (run now, run in the follow-up job), each in order."""
    return (
        [s for s in stages if s not in DEFERRABLE],
        [s for s in stages if s in DEFERRABLE],
    )


def stage_making(derivative: str) -> str | None:
    """The name of the stage whose outputs include ``derivative``; None if none does."""
    for stage in STAGES.values():
        if derivative in stage.outputs:
            return stage.name
    return None


def get_stage(name: str) -> Stage:
    """The registered stage called ``name``; :class:`LogicError` if there is none."""
    try:
        return STAGES[name]
    except KeyError:
        raise LogicError(
            f"unknown stage {name!r}; known stages: {', '.join(sorted(STAGES))}",
            code="unknown_stage",
        ) from None


def resolve_stages(pipeline: str, stages: list[str] | None = None) -> list[str]:
    """The stages to run for ``pipeline``, optionally narrowed to ``stages``.

    Explicit stages must be known; they run in the registry's order with duplicates
    dropped, and ``validation`` is always first: no stage ever sees unvalidated bytes.
    Raises :class:`LogicError` (code ``unknown_pipeline`` / ``unknown_stage``).
    """
    if pipeline not in PIPELINES:
        raise LogicError(
            f"unknown pipeline {pipeline!r}; known pipelines: {', '.join(sorted(PIPELINES))}",
            code="unknown_pipeline",
        )
    if not stages:
        return list(PIPELINES[pipeline])
    for name in stages:
        get_stage(name)
    order = ["validation", *PIPELINES["full_processing"][1:], *STAGES]
    wanted = {"validation", *stages}
    result: list[str] = []
    for name in order:
        if name in wanted and name not in result:
            result.append(name)
    return result
