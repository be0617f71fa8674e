"""Named pipelines and stage resolution, as the api uses them at enqueue time."""

from __future__ import annotations

import pytest

from filmstrip.errors import Category, LogicError
from filmstrip.pipeline import PIPELINES, resolve_stages
from filmstrip.pipeline.registry import get_stage


def test_named_pipelines() -> None:
    assert PIPELINES["full_processing"] == ["validation", "metadata", "thumbnails", "optimization"]
    assert PIPELINES["quick_processing"] == ["validation", "thumbnails"]
    assert resolve_stages("full_processing") == PIPELINES["full_processing"]
    assert resolve_stages("quick_processing", None) == ["validation", "thumbnails"]


def test_every_stage_of_every_pipeline_is_registered() -> None:
    for stages in PIPELINES.values():
        for name in stages:
            assert get_stage(name).name == name


def test_explicit_stages_are_ordered_deduplicated_and_validated_first() -> None:
    got = resolve_stages("full_processing", ["thumbnails", "metadata", "thumbnails"])
    assert got == ["validation", "metadata", "thumbnails"]


def test_unknown_pipeline_is_a_logic_error() -> None:
    with pytest.raises(LogicError) as info:
        resolve_stages("turbo_processing")
    assert info.value.code == "unknown_pipeline"
    assert info.value.category is Category.LOGIC
    assert "turbo_processing" in info.value.message


def test_unknown_stage_is_a_logic_error() -> None:
    with pytest.raises(LogicError) as info:
        resolve_stages("full_processing", ["thumbnails", "sharpen"])
    assert info.value.code == "unknown_stage"
    assert "sharpen" in info.value.message
    with pytest.raises(LogicError):
        get_stage("sharpen")
