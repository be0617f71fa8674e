"""Everything a stage needs to know about limits and renditions, in one immutable value."""

from __future__ import annotations

from typing import Literal

import msgspec

from filmstrip.settings import Settings

FailOn = Literal["none", "truncated", "error", "warning"]


class PipelineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Limits, rendition sizes and encoder settings; built once from :class:`Settings`."""

    max_pixels: int = 100_000_000
    max_dimension: int = 65_500
    max_frames: int = 1000
    fail_on: FailOn = "warning"
    thumbnail_size: int = 256
    thumbnail_format: str = "webp"
    thumbnail_quality: int = 80
    preview_size: int = 1440
    preview_format: str = "jpeg"
    preview_quality: int = 80
    optimize_quality: int = 80
    optimize_min_saving: float = 0.10
    optimize_effort: int = 2
    optimize_avif: bool = False
    optimize_avif_effort: int = 0
    optimize_avif_max_time_ratio: float = 2.0
    optimize_concurrency: int = 2
    thumbhash_size: int = 32
    stage_timeout_s: float = 60.0
    vips_concurrency: int = 1
    vips_cache_max_ops: int = 0
    vips_cache_max_mb: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineOptions:
        """The pipeline's view of the process settings."""
        return cls(
            max_pixels=settings.max_pixels,
            max_dimension=settings.max_dimension,
            max_frames=settings.max_frames,
            fail_on=msgspec.convert(settings.decode_fail_on, FailOn),
            thumbnail_size=settings.thumbnail_size,
            thumbnail_format=settings.thumbnail_format,
            thumbnail_quality=settings.thumbnail_quality,
            preview_size=settings.preview_size,
            preview_format=settings.preview_format,
            preview_quality=settings.preview_quality,
            optimize_quality=settings.optimize_quality,
            optimize_min_saving=settings.optimize_min_saving,
            optimize_effort=settings.optimize_effort,
            optimize_avif=settings.optimize_avif,
            optimize_avif_effort=settings.optimize_avif_effort,
            optimize_avif_max_time_ratio=settings.optimize_avif_max_time_ratio,
            optimize_concurrency=settings.optimize_concurrency,
            thumbhash_size=settings.thumbhash_size,
            stage_timeout_s=settings.stage_timeout_s,
            vips_concurrency=settings.vips_concurrency,
            vips_cache_max_ops=settings.vips_cache_max_ops,
            vips_cache_max_mb=settings.vips_cache_max_mb,
        )

    @property
    def rendition_size(self) -> int:
        """The longest edge of the one shared decode every smaller rendition is cut from."""
        return max(self.preview_size, self.thumbnail_size)
