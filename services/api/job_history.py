"""A job's runs as its photo's events tell them: when each run started, how long each stage
took, how it ended. The queue keeps a job's last error only; the events, kept per client
for the bus's replay window, hold the rest for as long as that window reaches."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from filmstrip import keys
from filmstrip.protocols.events import (
    PHOTO_COMPLETED,
    PHOTO_DEFERRED_COMPLETED,
    PHOTO_FAILED,
    PHOTO_PROCESSING_STARTED,
    PHOTO_UPLOADED,
    STAGE_COMPLETED,
    Event,
)
from filmstrip.protocols.http import JobFailure, JobRun, StageTiming
from filmstrip.protocols.jobs import PhotoProcessingJob
from filmstrip.queue import JobInfo, JobState
from filmstrip.redis_client import RedisClient

# A client's stream is capped near FILMSTRIP_BUS_REPLAY_MAXLEN (1,000 by default, trimmed
# approximately); read a little past any sane cap, newest first.
_MAX_EVENTS = 5000
_decode_event = msgspec.json.Decoder(Event).decode
_CLOCK_SKEW_MS = 1000
_Outcome = Literal["running", "completed", "failed", "ended"]


@dataclass
class _Run:
    attempt: int | None
    started_at_ms: int | None
    finished_at_ms: int | None = None
    outcome: _Outcome | None = None
    stages: list[StageTiming] = field(default_factory=list)
    error: JobFailure | None = None


async def photo_events(
    redis: RedisClient, client_id: str, photo_id: str
) -> list[tuple[int, Event]]:
    """The photo's events still in its client's replay stream, oldest first, each with the
    epoch ms of its stream id."""
    entries: Any = await redis.xrevrange(keys.client_events(client_id), count=_MAX_EVENTS)
    found: list[tuple[int, Event]] = []
    marker = photo_id.encode()
    for entry_id, fields in entries:
        raw = fields.get(b"e", b"")
        if marker not in raw:  # skip decoding the client's other photos' events
            continue
        try:
            event = _decode_event(raw)
        except msgspec.DecodeError:
            continue
        if event.photo_id == photo_id:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            found.append((_made_at_ms(event, int(eid.split("-", 1)[0])), event))
    found.reverse()
    return found


def _made_at_ms(event: Event, published_ms: int) -> int:
    """When the event happened: its own ``timestamp``. Not its stream id's time, which is
    when it was published: a worker holds a fast photo's started and stage events and sends
    them with its completion in one call, so they all share that moment (a 42 ms run read
    as 0 ms)."""
    stamp = event.timestamp
    try:
        whole = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        return whole * 1000 + int(stamp[20:23] or 0)
    except (ValueError, TypeError):
        return published_ms


def _failure(raw: Any) -> JobFailure | None:
    if not isinstance(raw, dict):
        return None
    return JobFailure(
        code=str(raw.get("code", "")),
        category=str(raw.get("category", "")),
        message=str(raw.get("message", "")),
    )


def job_runs(
    info: JobInfo, spec: PhotoProcessingJob, events: list[tuple[int, Event]], runs_stages: list[str]
) -> list[JobRun]:
    """The runs of the job ``info`` (``spec`` is its payload, ``runs_stages`` the stages it
    runs itself: not those a ready job leaves to its follow-up), oldest first."""
    ready = spec.pipeline.phase == "ready"
    stages = set(runs_stages)
    runs: list[_Run] = []

    def begin(attempt: int | None, at_ms: int | None) -> _Run:
        if runs and runs[-1].outcome is None:
            runs[-1].outcome = "ended"
        runs.append(_Run(attempt=attempt, started_at_ms=at_ms))
        return runs[-1]

    for at_ms, event in events:
        data = event.data
        if event.type == PHOTO_PROCESSING_STARTED and ready:
            attempt = data.get("attempt")
            begin(attempt if isinstance(attempt, int) else None, at_ms)
        elif event.type == STAGE_COMPLETED and data.get("stage") in stages:
            stage, ms = str(data["stage"]), float(data.get("ms") or 0)
            run = runs[-1] if runs else None
            if run is None or run.outcome is not None or any(s.stage == stage for s in run.stages):
                if ready:
                    # Each run of a ready job begins with its start event: a stage outside
                    # one is another job's (a remake of a damaged derivative announces none).
                    continue
                # A follow-up job announces no start: a stage seen again, or one after a
                # finished run, begins its next run.
                run = begin(None, at_ms - round(ms))
            run.stages.append(StageTiming(stage=stage, ms=ms, at_ms=at_ms))
        elif runs and runs[-1].outcome is None:
            if event.type == (PHOTO_COMPLETED if ready else PHOTO_DEFERRED_COMPLETED):
                runs[-1].outcome, runs[-1].finished_at_ms = "completed", at_ms
            elif event.type == PHOTO_FAILED and ready:
                runs[-1].outcome, runs[-1].finished_at_ms = "failed", at_ms
                runs[-1].error = _failure(data.get("error"))

    last_error = (
        msgspec.convert(info.error, JobFailure, from_attributes=True) if info.error else None
    )
    finished = info.finished_at_ms
    if info.state in (JobState.COMPLETED, JobState.FAILED) and finished is not None:
        # A run begun after the job ended is not the job's: a remake of its derivative,
        # which runs the same stage as another job (allowing the clocks of the worker that
        # stamped the events and of Redis a second apart).
        while (
            runs
            and runs[-1].started_at_ms is not None
            and (runs[-1].started_at_ms > finished + _CLOCK_SKEW_MS)
        ):
            runs.pop()
    if runs and runs[-1].outcome is None:
        last = runs[-1]
        if info.state is JobState.ACTIVE:
            last.outcome = "running"
        elif info.state is JobState.COMPLETED:
            last.outcome, last.finished_at_ms = "completed", info.finished_at_ms
        else:  # waiting or delayed again after it, or failed for good
            last.outcome, last.error, last_error = "failed", last_error, None
            last.finished_at_ms = info.finished_at_ms
    if last_error is not None:
        # The job's last error belongs to its most recent failed run; it has the detail its
        # photo.failed event leaves out (that is the client's message).
        for run in reversed(runs):
            if run.outcome == "failed":
                run.error = last_error
                break
            if run.outcome == "ended":
                run.outcome, run.error = "failed", last_error
                break
    return [
        JobRun(
            attempt=r.attempt,
            started_at_ms=r.started_at_ms,
            finished_at_ms=r.finished_at_ms,
            outcome=r.outcome or "ended",
            stages=r.stages,
            error=r.error,
        )
        for r in runs
    ]


def history_complete(events: list[tuple[int, Event]]) -> bool:
    """Whether the photo's events still begin at its upload."""
    return any(event.type == PHOTO_UPLOADED for _at, event in events)
