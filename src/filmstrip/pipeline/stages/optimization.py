"""optimization: a smaller full-size copy of the original, kept only if it saves enough."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyvips

from filmstrip.errors import FilmstripError
from filmstrip.pipeline import derivatives
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.decode import decode_full, format_name
from filmstrip.pipeline.derivatives import Derivative
from filmstrip.pipeline.plan import OUTPUTS
from filmstrip.pipeline.vips import decode_error

_gates: dict[int, threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


@contextmanager
def full_size_slot(ctx: StageContext) -> Iterator[None]:
    """Hold one of the process's ``optimize_concurrency`` full-size encode slots; bounds
    peak memory whatever the pool size. Waiting gives up when the stage is cancelled."""
    size = ctx.options.optimize_concurrency
    with _gates_lock:
        gate = _gates.setdefault(size, threading.BoundedSemaphore(size))
    while not gate.acquire(timeout=0.1):
        ctx.check_cancelled()
    try:
        yield
    finally:
        gate.release()


class Optimization:
    """Re-encode the original at full size as WebP (and AVIF when enabled and fast enough:
    at most ``optimize_avif_max_time_ratio`` x the WebP time). Upright, sRGB, no metadata.
    Animated GIF/WebP stay animated. The copy is kept only when it is at least
    ``optimize_min_saving`` of the original smaller. ``ctx.metadata["optimization"]`` records
    the result."""

    name = "optimization"
    outputs = OUTPUTS[name]

    def run(self, ctx: StageContext) -> dict[str, Any]:
        opts = ctx.options
        header = ctx.header()
        original = len(ctx.data)
        animated = header.animated
        # Skip the animations whose frames together exceed the pixel limit: a still copy
        # would not be a faithful "optimised original".
        if animated and header.pixels * header.frames > opts.max_pixels:
            for name in ("optimized", "optimized_avif"):
                ctx.derivatives.pop(name, None)
            skipped = {
                "format": "webp",
                "bytes": original,
                "original_bytes": original,
                "bytes_saved": 0,
                "kept": False,
                "animated": True,
                "skipped": "animation_too_large",
            }
            ctx.metadata["optimization"] = skipped
            return skipped
        ctx.check_cancelled()

        avif_s: float | None = None
        with full_size_slot(ctx):
            webp, webp_s = self.encode(ctx, "webp", opts.optimize_effort, animated)
            candidates = [webp]
            if opts.optimize_avif and not animated:
                avif, avif_s = self.encode(ctx, "avif", opts.optimize_avif_effort, animated)
                if avif_s <= opts.optimize_avif_max_time_ratio * webp_s:
                    candidates.append(avif)

        best = min(candidates, key=lambda d: len(d.data))
        saved = original - len(best.data)
        kept = saved > 0 and saved >= opts.optimize_min_saving * original
        # Idempotent: a rerun that keeps nothing must not leave an older copy behind.
        for name in ("optimized", "optimized_avif"):
            ctx.derivatives.pop(name, None)
        if kept:
            ctx.derivatives[best.name] = best
        result = {
            "format": best.ext,
            "bytes": len(best.data),
            "original_bytes": original,
            "bytes_saved": saved if kept else 0,
            "kept": kept,
            "animated": animated,
        }
        ctx.metadata["optimization"] = result
        # Timings go to the stage event only: the catalog's values must not change on a rerun.
        timings = {"webp_ms": round(webp_s * 1000)}
        if avif_s is not None:
            timings["avif_ms"] = round(avif_s * 1000)
        return {**result, **timings}

    def encode(
        self, ctx: StageContext, fmt: str, effort: int, animated: bool
    ) -> tuple[Derivative, float]:
        """One full-size candidate in ``fmt`` (webp or avif), and the seconds it took."""
        header = ctx.header()
        started = time.perf_counter()
        image = decode_full(ctx.data, header, ctx.options, all_frames=animated)
        try:
            with ctx.watch(image):
                data = derivatives.encode(image, fmt, ctx.options.optimize_quality, effort=effort)
        except pyvips.Error as exc:
            ctx.check_cancelled()
            raise decode_error(exc, f"this {format_name(header.format)} file") from None
        except FilmstripError:
            ctx.check_cancelled()
            raise
        elapsed = time.perf_counter() - started
        name = "optimized" if fmt == "webp" else f"optimized_{fmt}"
        height = image.get("page-height") if animated and image.get_typeof("page-height") else None
        derivative = Derivative(
            name=name,
            data=data,
            content_type=f"image/{fmt}",
            ext=fmt,
            width=image.width,
            height=int(height) if height else image.height,
        )
        return derivative, elapsed
