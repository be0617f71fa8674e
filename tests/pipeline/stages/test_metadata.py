"""The metadata stage's summary (sent on the stage event) and its profile names."""

from __future__ import annotations

from pathlib import Path

from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage
from filmstrip.pipeline.stages.metadata import icc_name


def test_the_summary_names_the_camera_and_says_whether_there_is_a_location(
    options: PipelineOptions, corpus: Path
) -> None:
    for name, camera, gps in (
        ("Apple_iPhone_4.jpg", "Apple iPhone 4", True),
        ("Epson_PerfectionV800.tiff", "Epson PerfectionV800", False),
        ("hopper.tif", None, False),
    ):
        ctx = StageContext((corpus / "real" / name).read_bytes(), options)
        summary = get_stage("metadata").run(ctx)
        assert (summary["camera"], summary["gps"]) == (camera, gps), name


def test_a_profile_without_a_readable_name_is_unknown_and_no_profile_none() -> None:
    assert icc_name(b"\x00" * 200) == "unknown"
    assert icc_name(None) is None and icc_name(b"") is None
