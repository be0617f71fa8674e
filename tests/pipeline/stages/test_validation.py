"""validation fails a photo whose pixels are corrupt itself, not a later stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from filmstrip.errors import DataError
from filmstrip.pipeline import PipelineOptions
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import get_stage


@pytest.mark.parametrize(
    ("name", "code"),
    [("BlueSquare_truncated.jpg", "truncated_image"), ("truncated_app14.jpg", "corrupt_image")],
)
def test_corrupt_pixels_fail_the_validation_stage(
    name: str, code: str, options: PipelineOptions, corpus: Path
) -> None:
    ctx = StageContext((corpus / "bad" / name).read_bytes(), options)
    ctx.header()  # the header reads fine: only decoding the pixels shows the fault
    with pytest.raises(DataError) as info:
        get_stage("validation").run(ctx)
    assert info.value.code == code
