"""Every Redis key and channel name Filmstrip uses, in one place.

On a Redis Cluster a Lua script or a MULTI may only touch keys of one hash slot, so the
keys that one script or transaction touches together share a hash tag (the part between
the first ``{`` and the next ``}``): one tag per queue (``{photo-processing}``), one per
client for its event stream and once-keys (``{client:<id>}``), one for the bus's presence
records and one for the reconciler's coordination keys (``tests/test_key_slots.py``
checks each group hashes to one slot).
"""

from __future__ import annotations

from typing import NamedTuple

# --- events -----------------------------------------------------------------------------


def client_tag(client_id: str) -> str:
    """The hash tag of one client's event keys, which the publish script touches at once
    (each begins ``filmstrip:{client:<id>``: one slot even if the id holds a brace)."""
    return "{client:" + client_id + "}"


def client_events(client_id: str) -> str:
    """The capped per-client stream of events, for replay after a reconnect."""
    return f"filmstrip:{client_tag(client_id)}:events"


def event_once(client_id: str, name: str) -> str:
    """Marks an event of ``client_id`` that must be published at most once (e.g. a photo's
    completion); on the slot of the client's stream, which the same script appends to."""
    return f"filmstrip:{client_tag(client_id)}:once:{name}"


# --- bus (see filmstrip.services.bus.presence) ----------------------------------------------------

_BUS_TAG = "{filmstrip:bus}"


def bus_instances() -> str:
    """Sorted set of live bus process ids, scored by when each last reported (unix ms)."""
    return f"{_BUS_TAG}:instances"


def bus_instance(instance_id: str) -> str:
    """Hash of one bus process's figures (sockets, identified, ...); expires if it dies.
    Written in one MULTI with ``bus_instances()``, so on its slot."""
    return f"{_BUS_TAG}:instance:{instance_id}"


def bus_client_sockets(client_id: str) -> str:
    """Sorted set of one client's identified sockets on every bus process, scored by when
    each stops counting unless its bus refreshes it (Redis's clock, ms)."""
    return f"filmstrip:bus:sockets:{client_id}"


# --- queue (see filmstrip.queue) ---------------------------------------------------------

#: Priority bands 1 (first) .. 10 (last); one work stream per band.
PRIORITIES = range(1, 11)
#: The consumer group every worker of a queue joins (a group name, not a key).
QUEUE_GROUP = "workers"


def queue_tag(queue: str) -> str:
    """The hash tag that keeps every key of one queue on one Cluster slot; ValueError for a
    name that makes it empty (Redis would hash each whole key, scattering the queue)."""
    if not queue or queue.startswith("}"):
        raise ValueError(f"queue name {queue!r} cannot be a hash tag: empty or starts with }}")
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


class QueueKeys(NamedTuple):
    """Every key of one queue, by name (the functions above make each)."""

    streams: list[str]  # the work streams, band 1 first
    delayed: str
    completed: str
    failed: str
    dead_letter: str
    paused: str
    limiter: str
    job_prefix: str
    stats_prefix: str

    @classmethod
    def of(cls, queue: str) -> QueueKeys:
        """The keys of the queue named ``queue``."""
        return cls(
            [queue_stream(queue, p) for p in PRIORITIES], queue_delayed(queue),
            queue_completed(queue), queue_failed_index(queue), queue_dead_letter(queue),
            queue_paused(queue), queue_limiter(queue), queue_job_prefix(queue),
            queue_stats_prefix(queue),
        )  # fmt: skip

    @property
    def scripts(self) -> list[str]:
        """The KEYS every queue script takes, in the order ``filmstrip.queue.lua`` names."""
        return [*self.streams, self.delayed, self.completed, self.failed, self.dead_letter,
                self.paused, self.limiter]  # fmt: skip


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


# --- api protections (see filmstrip.services.api.ratelimit) ---------------------------------------


def api_rate(subject: str) -> str:
    """Token bucket of one rate-limited subject (``client:<id>`` or ``ip:<address>``)."""
    return f"filmstrip:ratelimit:{subject}"


# --- key layout (see filmstrip.redis_layout) ---------------------------------------------

#: The layout of these names; older releases had none (0).
LAYOUT_VERSION = 1


def layout_version() -> str:
    """The layout version the data in this Redis is kept in (absent: an older release's)."""
    return "filmstrip:layout"


def layout_lock() -> str:
    """Held by the one process moving keys to the current layout."""
    return "filmstrip:layout:lock"


# Names of older releases (layout 0), read only to move or honour what they left.
LEGACY_CLIENT_EVENTS_PREFIX = "filmstrip:events:client:"


def legacy_event_once(name: str) -> str:
    """A once-key as layout 0 named it (no client in it, so it cannot be moved)."""
    return f"filmstrip:events:once:{name}"


LEGACY_BUS_INSTANCES = "filmstrip:bus:instances"
