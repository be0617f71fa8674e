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


class Settlement:
    """How one delivery ended, on its way to the queue: ``outcome`` after ``delay_ms``."""

    __slots__ = ("delay_ms", "error", "job", "outcome")

    def __init__(
        self, job: Job, outcome: Outcome, delay_ms: int = 0, error: FilmstripError | None = None
    ) -> None:
        self.job = job
        self.outcome = outcome
        self.delay_ms = delay_ms
        self.error = error


def backoff_ms(base_ms: int, n: int, jitter: float) -> int:
    """BullMQ's exponential backoff ``base·2^(n-1)``, minus up to ``jitter`` of it at random."""
    delay = float(base_ms * 2 ** max(n - 1, 0))
    if jitter > 0:
        delay -= delay * jitter * random.random()
    return round(delay)


def decide(
    category: Category,
    *,
    attempt: int,
    attempts: int,
    deferrals: int,
    base_ms: int,
    options: QueueOptions,
) -> tuple[Outcome, int]:
    """The outcome and delay (ms) for delivery ``attempt`` of ``attempts`` (1-based), after
    ``deferrals`` RESOURCE deferrals, whose handler failed with ``category``."""
    if category is Category.RESOURCE and deferrals < options.resource_max_deferrals:
        return Outcome.DEFER, backoff_ms(base_ms, deferrals + 1, options.backoff_jitter)
    # Out of deferrals, a RESOURCE failure spends attempts like a TEMPORARY one.
    if category.retryable and attempt < attempts:
        return Outcome.RETRY, backoff_ms(base_ms, attempt, options.backoff_jitter)
    return Outcome.FAIL, 0
