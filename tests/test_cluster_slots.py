"""Every Lua script and MULTI keeps its keys on one Redis Cluster slot.

Three checks, so a script or transaction that spans slots fails here rather than on a
user's cluster:

- statically, the keys each one touches (and the prefixes its Lua appends ids to) hash to
  one slot, for ids of any shape;
- on the cluster, each runs through the component that calls it, in Redis 7's strict
  mode (``tests.support.redis_cluster.strict_scripts``: a script may touch no key of
  another slot, not even one it builds itself);
- a tripwire: every file that registers a script or opens a MULTI is listed in
  ``CHECKED``, so a new one cannot slip past the first two.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.crc import key_slot

from bench.redis_cluster import RedisCluster
from filmstrip import keys
from filmstrip.errors import DataError
from filmstrip.events import EventPublisher, forget_once, park_once, restore_once
from filmstrip.lease import Lease
from filmstrip.metrics.stage_stats import StageTimingsBuffer, read_stage_series
from filmstrip.queue import JobQueue, Outcome, QueueOptions, Settlement
from filmstrip.redis_client import RedisClient
from filmstrip.redis_layout import upgrade_layout
from filmstrip.services.api.ratelimit import RateLimiter
from filmstrip.services.api.reconciler import orphan_sweep_done, orphan_sweep_due
from filmstrip.services.bus.client_sockets import ClientSockets
from filmstrip.services.bus.hub import Hub
from filmstrip.services.bus.presence import Presence
from filmstrip.services.bus.replay import ReplayReader
from filmstrip.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]

# Ids of awkward shapes: a brace in an id must not move a key to another slot.
IDS = ["c_1a2b3c", "", "a{b", "a}b", "{x}", "}{", "ünï", "with space", "p:done"]

#: Every file that registers a Lua script or opens a MULTI, and the test that runs it.
CHECKED = {
    "src/filmstrip/queue/queue.py": "test_queue_scripts_on_the_cluster",
    "src/filmstrip/events/publisher.py": "test_event_publishing_on_the_cluster",
    "services/api/ratelimit.py": "test_rate_limiter_on_the_cluster",
    "services/bus/presence.py": "test_bus_presence_on_the_cluster",
    "services/bus/client_sockets.py": "test_the_bus_socket_counts_on_the_cluster",
    "src/filmstrip/lease.py": "test_the_reconcilers_lease_on_the_cluster",
    "services/bus/replay.py": "test_the_bus_replay_head_on_the_cluster",
    # Only on a single Redis (its rename spans slots by design); on a cluster it records.
    "src/filmstrip/redis_layout.py": "test_the_layout_upgrade_only_records_on_a_cluster",
}

_SCRIPT_OR_MULTI = re.compile(
    r"register_script\(|\beval(sha)?\(|\bEVAL(SHA)?\b|transaction=True|\.multi\(\)"
    r"|\.transaction\(|\"MULTI\"|'MULTI'"
)


def _one_slot(names: list[str]) -> bool:
    return len({key_slot(name.encode()) for name in names}) == 1


def test_every_script_and_multi_is_checked_here() -> None:
    found = set()
    for top in ("src", "services"):
        for path in (ROOT / top).rglob("*.py"):
            text = path.read_text()
            # Files that talk to Redis (a PostgreSQL transaction is none of this test's).
            if "redis" in text.lower() and _SCRIPT_OR_MULTI.search(text):
                found.add(str(path.relative_to(ROOT)))
    found -= {"src/filmstrip/script_wire.py"}  # sends the scripts the others register
    assert found == set(CHECKED), (
        "a file registers a script or opens a MULTI that tests/test_cluster_slots.py does "
        "not run on the cluster; add a test for it and list it in CHECKED: "
        f"{sorted(found ^ set(CHECKED))}"
    )


# --- statically -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["photo-processing", *(i for i in IDS if i and i[0] != "}")])
def test_a_queues_keys_and_prefixes_share_one_slot(name: str) -> None:
    queue = JobQueue(aioredis.Redis(), QueueOptions(name=name))
    job_prefix, stats_prefix = queue.keys.job_prefix, queue.keys.stats_prefix
    # The scripts build job and stats keys from these prefixes inside Lua.
    built = [job_prefix + i for i in IDS] + [stats_prefix + "m:29000000", stats_prefix + "h:1"]
    assert _one_slot([*queue.keys.scripts, *built])


@pytest.mark.parametrize("name", ["", "}", "}{"])
def test_a_queue_name_that_makes_no_hash_tag_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        JobQueue(aioredis.Redis(), QueueOptions(name=name))
    with pytest.raises(SettingsError, match="FILMSTRIP_QUEUE_NAME"):
        load_settings({"FILMSTRIP_QUEUE_NAME": name})


@pytest.mark.parametrize("client_id", IDS)
def test_a_clients_stream_and_once_keys_share_one_slot(client_id: str) -> None:
    publisher = EventPublisher(ClusterClient(host="127.0.0.1", port=1))
    names = [k for once in IDS for k in publisher._keys(client_id, once)]
    assert _one_slot(names)


@pytest.mark.parametrize("instance", IDS)
def test_bus_presence_keys_share_one_slot(instance: str) -> None:
    assert _one_slot([keys.bus_instance(instance), keys.bus_instances()])


def test_the_queues_key_names_are_those_older_releases_used() -> None:
    """Queued jobs survive an upgrade because these names never changed: renaming one
    would strand the jobs waiting under it."""
    name = "photo-processing"
    queue = JobQueue(aioredis.Redis(), QueueOptions(name=name))
    assert queue.keys.scripts == [
        *(f"{{{name}}}:p{p}" for p in range(1, 11)),
        f"{{{name}}}:delayed", f"{{{name}}}:completed", f"{{{name}}}:failed",
        f"{{{name}}}-failed", f"{{{name}}}:paused", f"{{{name}}}:limiter",
    ]  # fmt: skip
    assert [queue.keys.job_prefix, queue.keys.stats_prefix] == [
        f"{{{name}}}:job:",
        f"{{{name}}}:stats:",
    ]


# --- on the cluster ---------------------------------------------------------------------------


@pytest.fixture
def redis_kind() -> str:
    return "cluster"


async def test_queue_scripts_on_the_cluster(redis: RedisClient) -> None:
    queue = JobQueue(redis, QueueOptions(name="slots", backoff_ms=0))
    await queue.ensure_groups()
    assert (await queue.add("a", b"x")).created
    await queue.add("later", b"x", delay_ms=60_000)
    assert await queue.cancel("later")
    # STEP takes "a"; the outcome fails it for good (a dead letter) on the next STEP.
    (taken,) = (await queue.step("c1", 1, [])).jobs
    job_id, eid = taken.id.encode(), taken.entry_id.encode()
    assert await queue.set_progress("a", eid.decode(), 50)
    outcome = [Settlement(taken, Outcome.FAIL, error=DataError("no", code="bad"))]
    applied = (await queue.step("c1", 0, outcome)).applied
    assert applied == [1] and job_id == b"a"
    assert await queue.retry_failed("a")
    assert await queue.read("c2", 1, 10)  # XREADGROUP, then ACTIVATE
    reaper = JobQueue(redis, QueueOptions(name="slots", visibility_timeout_ms=0, max_stalled=0))
    reclaimed = await reaper.reclaim("c3", None, 1)
    assert reclaimed[2]  # stalled past max_stalled 0: dead-lettered
    assert await queue.remove_failed("a")
    assert (await queue.counts())["failed"] == 0


async def test_event_publishing_on_the_cluster(redis: RedisClient) -> None:
    publisher = EventPublisher(redis)

    async def publish() -> str:
        return await publisher.publish(
            "photo.processing.completed", photo_id="p", client_id="c{1}", trace_id="0" * 32,
            once_key="p:done",
        )  # fmt: skip

    first = await publisher.publish(
        "photo.processing.completed", photo_id="p", client_id="c{1}", trace_id="0" * 32,
        once_key="p:done",
    )  # fmt: skip
    again = await publisher.publish(
        "photo.processing.completed", photo_id="p", client_id="c{1}", trace_id="0" * 32,
        once_key="p:done",
    )  # fmt: skip
    assert again == first
    await forget_once(redis, "c{1}", "p:done")
    third = await publisher.publish(
        "photo.processing.completed", photo_id="p", client_id="c{1}", trace_id="0" * 32,
        once_key="p:done",
    )  # fmt: skip
    assert third != first
    assert await redis.xlen(keys.client_events("c{1}")) == 2
    # A retry's reopening, put back when its queue step failed: still told, not again.
    await park_once(redis, "c{1}", "p:done")
    await restore_once(redis, "c{1}", "p:done")
    assert await publish() == third
    # Reopened for good, the new outcome's key is the one kept.
    await park_once(redis, "c{1}", "p:done")
    fourth = await publish()
    await restore_once(redis, "c{1}", "p:done")
    assert fourth != third and await publish() == fourth
    assert await redis.xlen(keys.client_events("c{1}")) == 3
    # With no key to set aside (an outcome nobody was told of), a park drops a stale parked
    # one: a failed retry's restore must not bring back an older outcome's key over it.
    await redis.delete(keys.event_once("c{1}", "p:done"))
    await redis.set(keys.event_once("c{1}", "p:done:parked"), third)
    await park_once(redis, "c{1}", "p:done")
    await restore_once(redis, "c{1}", "p:done")
    assert not await redis.exists(keys.event_once("c{1}", "p:done"))


async def test_the_bus_replay_head_on_the_cluster(redis: RedisClient) -> None:
    """The head script reads the client's stream and the server's time in one call."""
    replay = ReplayReader(redis)
    before_ms = (await redis.time())[0] * 1000
    empty = await replay.head("c{2}")
    assert empty[1] == 0 and before_ms - 2_000 <= empty[0] <= before_ms + 2_000
    newest = await EventPublisher(redis).publish(
        "photo.uploaded", photo_id="p", client_id="c{2}", trace_id="0" * 32
    )
    assert "-".join(map(str, await replay.head("c{2}"))) == newest


async def test_rate_limiter_on_the_cluster(redis: RedisClient) -> None:
    # The limiter fails open on Redis errors, so a CROSSSLOT would show as no limit.
    limiter = RateLimiter(redis, rate_per_s=0.1, burst=1)
    assert await limiter.take("client:c") == 0
    assert await limiter.take("client:c") > 0


async def test_bus_presence_on_the_cluster(redis: RedisClient) -> None:
    presence = Presence(redis, Hub(ReplayReader(redis)), port=1, interval_s=1)
    await presence.report()
    assert await redis.zscore(keys.bus_instances(), presence.instance_id) is not None
    await presence.withdraw()
    assert not await redis.exists(keys.bus_instance(presence.instance_id))


async def test_the_reconcilers_lease_on_the_cluster(redis: RedisClient) -> None:
    """Its lease takes, renews and releases one key per script; a round's gates too."""
    ran: list[str] = []

    async def work() -> None:
        await lease.renew()
        ran.append("round")

    lease = Lease(redis, keys.reconciler_lock(), ttl_s=5)
    assert await lease.run(work) and ran == ["round"]
    assert not await redis.exists(keys.reconciler_lock())  # released
    assert await orphan_sweep_due(redis)
    await orphan_sweep_done(redis, 60)
    assert not await orphan_sweep_due(redis)


async def test_the_bus_socket_counts_on_the_cluster(redis: RedisClient) -> None:
    """Admitted, refreshed and released one client's set at a time, the refresh too (a
    cluster pipeline would not load its script)."""
    sockets = ClientSockets(redis, cap=2, ttl_s=30)
    clients = [f"c{n}" for n in range(6)]  # their sets spread over the nodes
    for client in clients:
        assert await sockets.admit(client, f"{client}-s1")
        assert await sockets.admit(client, f"{client}-s2")
        assert not await sockets.admit(client, f"{client}-s3")  # at the cap
    await redis.script_flush()
    await sockets.refresh()
    for client in clients:
        assert await redis.zcard(keys.bus_client_sockets(client)) == 2
    await sockets.release_all()
    for client in clients:
        assert await redis.zcard(keys.bus_client_sockets(client)) == 0


async def test_stage_stats_and_dashboard_reads_span_slots_outside_transactions(
    redis: RedisClient,
) -> None:
    """Pipelines without MULTI may mix slots: redis-py's cluster client sends each node its
    share. The stage timings' minutes and the dashboard's reads do."""
    timings = StageTimingsBuffer(redis)
    now_ms = 29_000_000 * 60_000
    for minute in range(5):
        timings.add({"thumbnails": 10.0, "metadata": 4.0}, now_ms=now_ms - minute * 60_000)
    await timings.flush()
    series = {s.stage: s for s in await read_stage_series(redis, now_ms=now_ms, minutes=5)}
    assert series["thumbnails"].runs == [1] * 5 and series["metadata"].mean_ms == [4.0] * 5
    names = {keys.stage_stats_minute(29_000_000 - m) for m in range(5)}
    assert len({redis.get_node_from_key(n).name for n in names}) > 1  # several nodes


async def test_the_layout_upgrade_only_records_on_a_cluster(
    redis: RedisClient, redis_cluster: RedisCluster
) -> None:
    legacy = keys.LEGACY_CLIENT_EVENTS_PREFIX + "c"
    await redis.xadd(legacy, {"e": "{}"})
    assert await upgrade_layout(redis)
    assert await redis.exists(legacy)  # left to expire: a rename across slots is refused
    assert not await upgrade_layout(redis)
