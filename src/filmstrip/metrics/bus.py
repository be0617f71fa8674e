"""Bus metrics, read from the hub's own counters when Prometheus scrapes.

The hub already counts what it does; a collector that reads those figures on scrape keeps
the bus's hot path free of metric calls and the bus code free of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class BusFigures:
    """A snapshot of one bus process."""

    connections: int
    identified: int
    rooms: int
    delivered: int
    dropped: int


class BusCollector(Collector):
    """Turns a :class:`BusFigures` snapshot into Prometheus families on each scrape."""

    def __init__(self, snapshot: Callable[[], BusFigures]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        f = self._snapshot()
        yield GaugeMetricFamily(
            "filmstrip_ws_connections", "Open WebSocket connections.", value=f.connections
        )
        yield GaugeMetricFamily(
            "filmstrip_ws_identified", "WebSocket connections that identified.", value=f.identified
        )
        yield GaugeMetricFamily("filmstrip_ws_rooms", "Rooms with members.", value=f.rooms)
        yield CounterMetricFamily(
            "filmstrip_ws_events_delivered",
            "Event frames queued to sockets (live and replayed).",
            value=f.delivered,
        )
        yield CounterMetricFamily(
            "filmstrip_ws_events_dropped",
            "Event frames dropped because a socket was too slow and was closed.",
            value=f.dropped,
        )
