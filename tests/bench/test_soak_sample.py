"""The soak's bare-pipeline sample keeps the run's mix of photos."""

from __future__ import annotations

from collections import Counter

from bench.bare_pipeline import bare_sample


def test_a_small_run_is_sampled_whole() -> None:
    sources = [b"a", b"b", b"c"]
    assert Counter(bare_sample(sources, [2, 0, 3], 200)) == {b"a": 2, b"c": 3}


def test_a_large_run_is_sampled_in_proportion() -> None:
    sources = [b"big", b"small", b"rare"]
    sample = bare_sample(sources, [1500, 496, 4], 200)
    assert len(sample) == 200
    # 150 / 49.6 / 0.4 of 200: the largest remainder gets the odd photo.
    assert Counter(sample) == {b"big": 150, b"small": 50}


def test_the_sample_is_not_in_source_order() -> None:
    sample = bare_sample([b"x", b"y"], [1000, 1000], 100)
    assert Counter(sample) == {b"x": 50, b"y": 50}
    assert sample != sorted(sample)
