"""Bodies the web pages read: the public client config and the queue dashboard."""

from __future__ import annotations

import msgspec

from filmstrip.protocols.http import SessionCounts


class ClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/config``: what a browser needs before it can talk to the other roles."""

    bus_url: str
    queue: str


class MinuteCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs finished per minute over the last hour, oldest first (the last is this minute)."""

    start_ms: int
    completed: list[int]
    failed: list[int]


class StageSeries(msgspec.Struct, frozen=True, kw_only=True):
    """One stage over the window: runs and mean ms per minute, oldest minute first."""

    stage: str
    runs: list[int]
    mean_ms: list[float]


class BusInstance(msgspec.Struct, frozen=True, kw_only=True):
    """One bus process as it last reported itself."""

    id: str
    host: str
    port: int
    sockets: int
    identified: int
    rooms: int
    delivered: int
    updated_at_ms: int


class Dashboard(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/dashboard``: everything the queue dashboard draws, in one read."""

    queue: str
    now_ms: int
    #: Jobs per state (a photo makes two: its ready job and its follow-up).
    counts: dict[str, int]
    #: Photos per status, every client's.
    photos: SessionCounts
    paused: bool
    throughput: MinuteCounts
    stages: list[StageSeries]
    bus: list[BusInstance]
