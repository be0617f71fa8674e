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


def bus_client_sockets(client_id: str) -> str:
    """Sorted set of one client's identified sockets on every bus process, scored by when
    each stops counting unless its bus refreshes it (Redis's clock, ms)."""
    return f"filmstrip:bus:sockets:{client_id}"


def event_once(name: str) -> str:
    """Marks an event that must be published at most once (e.g. a photo's completion)."""
    return f"filmstrip:events:once:{name}"


# --- queue (see filmstrip.queue) ---------------------------------------------------------

#: Priority bands 1 (first) .. 10 (last); one work stream per band.
PRIORITIES = range(1, 11)
#: The consumer group every worker of a queue joins (a group name, not a key).
QUEUE_GROUP = "workers"


def queue_tag(queue: str) -> str:
    """The hash tag that keeps every key of one queue on one Cluster slot."""
    return "{" + queue + "}"


def queue_stream(queue: str, priority: int) -> str:
    """The work stream of one priority band; entries carry only the job id."""
    return f"{queue_tag(queue)}:p{priority}"


def queue_job_prefix(queue: str) -> str:
    """Prefix of the per-job hash (payload, options, state); Lua appends the job id."""
    return f"{queue_tag(queue)}:job:"


def queue_job(queue: str, job_id: str) -> str:
    """The hash that holds one job's payload, options and state."""
    return queue_job_prefix(queue) + job_id


def queue_delayed(queue: str) -> str:
    """Sorted set of job ids by the epoch ms at which they become waiting again."""
    return f"{queue_tag(queue)}:delayed"


def queue_completed(queue: str) -> str:
    """Sorted set of completed job ids by finish time (retention trims it)."""
    return f"{queue_tag(queue)}:completed"


def queue_failed_index(queue: str) -> str:
    """Sorted set of dead-lettered job ids by failure time, for paging and retention."""
    return f"{queue_tag(queue)}:failed"


def queue_dead_letter(queue: str) -> str:
    """The dead-letter stream: ``{photo-processing}-failed`` for the photo queue."""
    return f"{queue_tag(queue)}-failed"


def queue_paused(queue: str) -> str:
    """Present while the queue is paused."""
    return f"{queue_tag(queue)}:paused"


def queue_limiter(queue: str) -> str:
    """Fixed-window counter of the global rate limiter."""
    return f"{queue_tag(queue)}:limiter"


def queue_stats_prefix(queue: str) -> str:
    """Prefix of the time-bucketed job stats hashes (``m:<minute>``, ``h:<hour>``)."""
    return f"{queue_tag(queue)}:stats:"


# --- consistency manager (api) -----------------------------------------------------------


def reconciler_lock() -> str:
    """Held (an owner token, a short renewed lease: filmstrip/lease.py) by the one api
    process running a reconciler round."""
    return "filmstrip:lock:reconciler"


def reconciler_round_gate() -> str:
    """Exists (with a TTL of most of the reconcile interval) after a finished round, so
    several api processes run one round per interval between them."""
    return "filmstrip:gate:reconcile-round"


def orphan_sweep_gate() -> str:
    """Exists (with a TTL of the sweep interval) after an orphan sweep finished."""
    return "filmstrip:gate:orphan-sweep"


# --- dashboard stats (see filmstrip.metrics.stage_stats) ---------------------------------


def stage_stats_minute(minute: int) -> str:
    """Hash of per-stage run counts and summed milliseconds in one minute (epoch minute)."""
    return f"filmstrip:stats:stages:m:{minute}"


# --- api protections (see services.api.ratelimit) ----------------------------------------


def api_rate(subject: str) -> str:
    """Token bucket of one rate-limited subject (``client:<id>`` or ``ip:<address>``)."""
    return f"filmstrip:ratelimit:{subject}"
