"""Events: published to Redis by api and worker, bridged to WebSockets by the bus."""

from filmstrip.events.publisher import (
    EventPublisher,
    forget_once,
    new_trace_id,
    park_once,
    restore_once,
)

__all__ = ["EventPublisher", "forget_once", "new_trace_id", "park_once", "restore_once"]
