"""Events: published to Redis by api and worker, bridged to WebSockets by the bus."""

from filmstrip.events.publisher import EventPublisher, new_trace_id

__all__ = ["EventPublisher", "new_trace_id"]
