"""What happens to a job after its handler returns or raises: the retry policy."""

from __future__ import annotations

import enum
import random

from filmstrip.errors import Category, FilmstripError
from filmstrip.queue.job import Job
from filmstrip.queue.options import QueueOptions


class Outcome(enum.StrEnum):
    """The single-letter codes the STEP script understands."""

    COMPLETE = "c"
    FAIL = "f"  # for good: dead-letter
    RETRY = "r"  # spends an attempt, comes back after a backoff
    DEFER = "d"  # RESOURCE: comes back later without spending an attempt
    HAND_BACK = "h"  # shutdown: back to waiting at once, attempt not spent


def backoff_ms(base_ms: int, n: int, jitter: float) -> int:
    """BullMQ's exponential backoff ``base·2^(n-1)``, minus up to ``jitter`` of it at random."""
    delay = float(base_ms * 2 ** max(n - 1, 0))
    if jitter > 0:
        delay -= delay * jitter * random.random()
    return round(delay)


def decide(job: Job, error: FilmstripError, options: QueueOptions) -> tuple[Outcome, int]:
    """The outcome and delay (ms) for a job whose handler raised ``error``."""
    category = error.category
    if category is Category.RESOURCE and job.deferrals < options.resource_max_deferrals:
        return Outcome.DEFER, backoff_ms(job.backoff_ms, job.deferrals + 1, options.backoff_jitter)
    # Out of deferrals, a RESOURCE failure spends attempts like a TEMPORARY one.
    if category.retryable and job.attempt < job.attempts:
        return Outcome.RETRY, backoff_ms(job.backoff_ms, job.attempt, options.backoff_jitter)
    return Outcome.FAIL, 0
