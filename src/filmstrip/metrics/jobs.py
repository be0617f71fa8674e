"""Worker metrics: stage and job durations, retries and dead letters."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

#: Stage times (seconds): a thumbnail of a small PNG up to a stage timeout.
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

STAGE_SECONDS = Histogram(
    "filmstrip_stage_duration_seconds",
    "Time one pipeline stage took, by stage (successful runs only).",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
JOB_SECONDS = Histogram(
    "filmstrip_job_duration_seconds",
    "Time one job delivery took in the handler, by phase (ready: the upload's job; deferred:"
    " its follow-up) and outcome (completed or the error category).",
    ["phase", "outcome"],
    buckets=STAGE_BUCKETS,
)
RETRIES = Counter(
    "filmstrip_job_retries_total",
    "Deliveries that failed with a retryable error and will run again, by category.",
    ["category"],
)
DEAD_LETTERS = Counter(
    "filmstrip_dead_letters_total",
    "Jobs this worker dead-lettered, by error category.",
    ["category"],
)
