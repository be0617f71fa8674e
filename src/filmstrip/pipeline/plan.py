"""The stages by name and the named pipelines built from them: what deciding a photo's
jobs needs, importable without loading libvips (the api decides jobs and never loads it)."""

from __future__ import annotations

from filmstrip.errors import LogicError

#: Every stage, in the order they run, and the derivatives each may write.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "validation": (),
    "metadata": (),
    "thumbnails": ("preview", "thumbnail"),
    "optimization": ("optimized", "optimized_avif"),
}

PIPELINES: dict[str, list[str]] = {
    "full_processing": ["validation", "metadata", "thumbnails", "optimization"],
    "quick_processing": ["validation", "thumbnails"],
}
# The names are the job contract's (PIPELINE_NAMES: what settings and uploads may name);
# each has its stages here, and only those (tests/test_settings.py).


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
    for name, outputs in OUTPUTS.items():
        if derivative in outputs:
            return name
    return None


def check_stage(name: str) -> str:
    """``name`` if a stage is called that; :class:`LogicError` if none is."""
    if name not in OUTPUTS:
        raise LogicError(
            f"unknown stage {name!r}; known stages: {', '.join(sorted(OUTPUTS))}",
            code="unknown_stage",
        )
    return name


def resolve_stages(pipeline: str, stages: list[str] | None = None) -> list[str]:
    """The stages to run for ``pipeline``, optionally narrowed to known ``stages``: in the
    registry's order, once each, ``validation`` first (no stage sees unvalidated bytes)."""
    if pipeline not in PIPELINES:
        raise LogicError(
            f"unknown pipeline {pipeline!r}; known pipelines: {', '.join(sorted(PIPELINES))}",
            code="unknown_pipeline",
        )
    if not stages:
        return list(PIPELINES[pipeline])
    for name in stages:
        check_stage(name)
    order = ["validation", *PIPELINES["full_processing"][1:], *OUTPUTS]
    wanted = {"validation", *stages}
    result: list[str] = []
    for name in order:
        if name in wanted and name not in result:
            result.append(name)
    return result
