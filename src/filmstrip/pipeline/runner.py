"""Running one stage off the event loop, with a deadline that really stops the work."""

from __future__ import annotations

import asyncio
from typing import Any

from filmstrip.concurrency import run_blocking
from filmstrip.errors import ResourceError
from filmstrip.pipeline.context import StageContext
from filmstrip.pipeline.registry import Stage


async def run_stage(
    stage: Stage, ctx: StageContext, *, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run ``stage.run(ctx)`` in the bounded pool; past ``timeout_s`` (default: the
    options' stage timeout) raise :class:`ResourceError` ``stage_timeout``.

    On timeout the context is cancelled: libvips kills the computation at its next tile,
    so the pool thread is freed soon after instead of finishing a doomed decode. The
    context is spent after that; build a new one to retry.
    """
    timeout = ctx.options.stage_timeout_s if timeout_s is None else timeout_s
    ctx.check_cancelled()
    task = asyncio.ensure_future(run_blocking(stage.run, ctx))
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        ctx.cancel()
        # The thread's own error (killed) is expected; retrieve it so asyncio stays quiet.
        task.add_done_callback(_swallow)
        raise ResourceError(
            f"stage {stage.name!r} took longer than {timeout:g} s and was stopped",
            code="stage_timeout",
        ) from None
    except asyncio.CancelledError:
        ctx.cancel()
        task.add_done_callback(_swallow)
        raise


def _swallow(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
