"""Every Redis key and channel name Filmstrip uses, in one place.

All keys of one queue share the ``{queue}`` hash tag so a Redis Cluster keeps them on one
slot (Lua scripts touch several at once).
"""

from __future__ import annotations

# --- events -----------------------------------------------------------------------------


def client_events(client_id: str) -> str:
    """The capped per-client stream of events, for replay after a reconnect."""
    return f"filmstrip:events:client:{client_id}"


# --- bus (see services.bus.presence) ------------------------------------------------------


def bus_instances() -> str:
    """Sorted set of live bus process ids, scored by when each last reported (unix ms)."""
    return "filmstrip:bus:instances"


def bus_instance(instance_id: str) -> str:
    """Hash of one bus process's figures (sockets, identified, ...); expires if it dies."""
    return f"filmstrip:bus:instance:{instance_id}"


# --- queue (see filmstrip.queue) ---------------------------------------------------------
