"""Resume: a reconnecting client gets what it missed, in order, then live events, with no
gap and no duplicate at the seam."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from filmstrip import keys
from filmstrip.events import EventPublisher, forget_once
from filmstrip.protocols import events as ev
from filmstrip.services.bus import streamid
from filmstrip.services.bus.app import HUB
from filmstrip.services.bus.replay import ReplayReader
from tests.bus.support import Account, BusClient, RunningBus

pytestmark = pytest.mark.both_redis

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def _upload(pub: EventPublisher, acc: Account, n: int = 0) -> str:
    return await pub.publish(
        ev.PHOTO_UPLOADED, photo_id=acc.photos[0], client_id=acc.client_id,
        trace_id=f"{n:032x}", data={"n": n},
    )  # fmt: skip


async def _on_every_node(redis: Any, *command: str) -> None:
    if isinstance(redis, ClusterClient):
        await redis.execute_command(*command, target_nodes=ClusterClient.ALL_NODES)
    else:
        await redis.execute_command(*command)


async def _until_resumed(c: BusClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    events = []
    while True:
        msg = await c.recv()
        assert msg["type"] != "error", msg
        if msg["type"] == "resumed":
            return events, msg
        events.append(msg)


async def test_resume_replays_missed_events_in_order_then_live(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    first = await connect(bus)
    await first.identify(acc.token)
    await first.subscribe(acc.photos[0])
    seen = await _upload(publisher, acc, 1)
    assert (await first.events(1))[0]["id"] == seen
    await first.ws.close()

    missed = [await _upload(publisher, acc, 2)]
    progress = await publisher.publish(
        ev.STAGE_COMPLETED, photo_id=acc.photos[0], client_id=acc.client_id,
        trace_id="0" * 32, data={"progress": 40},
    )  # fmt: skip
    missed.append(progress)
    missed.append(await _upload(publisher, acc, 3))

    second = await connect(bus)
    await second.identify(acc.token)
    await second.subscribe(acc.photos[0])  # so the missed processing event is replayed too
    await second.send({"type": "resume", "last_event_id": seen})
    replayed, resumed = await _until_resumed(second)
    assert [m["id"] for m in replayed] == missed
    assert resumed["replayed"] == 3 and resumed["last_event_id"] == missed[-1]
    assert resumed["truncated"] is False
    live = await _upload(publisher, acc, 4)
    assert [m["id"] for m in await second.events(1)] == [live]
    await second.barrier()  # and nothing twice


async def test_replay_skips_events_for_rooms_the_socket_is_not_in(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    await publisher.publish(
        ev.STAGE_COMPLETED, photo_id=acc.photos[0], client_id=acc.client_id, trace_id="0" * 32
    )
    upload = await _upload(publisher, acc)
    # It got the upload live (client room) but not the progress (photo room not joined).
    await c.send({"type": "resume", "last_event_id": "0"})
    replayed, _ = await _until_resumed(c)
    assert [m["id"] for m in replayed] == [upload]
    await c.barrier()


@pytest.mark.parametrize("form", ["identify", "resume"])
async def test_no_gap_and_no_duplicate_while_events_keep_coming(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher, form: str
) -> None:
    """``identify {last_event_id}`` keeps stream order across the seam; a separate ``resume``
    still misses nothing and repeats nothing, but live events sent between the two come
    first (nothing is held back for a socket that may never resume)."""
    acc = await make_account()
    before = [await _upload(publisher, acc, n) for n in range(30)]
    published = list(before)
    stop = asyncio.Event()

    async def keep_publishing() -> None:
        n = 1000
        while not stop.is_set():
            published.append(await _upload(publisher, acc, n))
            n += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(keep_publishing())
    try:
        c = await connect(bus)
        if form == "identify":
            await c.identify(acc.token, last_event_id=before[9])
        else:
            await c.identify(acc.token)
            await c.send({"type": "resume", "last_event_id": before[9]})
        got: list[str] = []
        resumed = False
        while not resumed or len(got) < 80:
            msg = await c.recv()
            if msg["type"] == "resumed":
                resumed = True
            else:
                got.append(msg["id"])
    finally:
        stop.set()
        await task
    await asyncio.sleep(0.2)  # let the last publishes reach the bus
    await c.send({"type": "ping"})
    while True:  # drain what the publisher managed before it stopped
        msg = await c.recv()
        if msg["type"] == "pong":
            break
        got.append(msg["id"])
    expected = published[10:]
    if form == "resume":
        assert len(set(got)) == len(got), "nothing twice"
        got.sort(key=lambda sid: tuple(map(int, sid.split("-"))))
    assert got == expected[: len(got)]
    assert len(got) == len(expected), "events published after resume must all arrive"


async def test_resume_twice_is_refused(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus)
    await c.identify(acc.token)
    await c.send({"type": "resume", "last_event_id": "0"})
    await c.expect("resumed")
    await c.send({"type": "resume", "last_event_id": "0"})
    assert (await c.expect("error"))["code"] == "bad_message"


async def test_resume_from_before_any_event_is_whole(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    """A client identified before its first event and resuming from the id it was given
    after a few events gets them all, not told of a gap that never was (Redis 6.2 keeps no
    count of trimmed entries, so that id must say when the client came)."""
    acc = await make_account()
    c = await connect(bus)
    floor = (await c.identify(acc.token))["last_event_id"]
    await c.ws.close()
    sent = [await _upload(publisher, acc, n) for n in range(3)]
    again = await connect(bus)
    await again.identify(acc.token)
    await again.send({"type": "resume", "last_event_id": floor})
    replayed, resumed = await _until_resumed(again)
    assert [m["id"] for m in replayed] == sent
    assert resumed["truncated"] is False


async def test_resume_reports_a_trimmed_stream(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    redis: Any,
) -> None:
    acc = await make_account()
    bus = (await start_bus(bus_replay_maxlen=5)).url  # publishers and bus share the setting
    small = EventPublisher(redis, replay_maxlen=5)
    first = await _upload(small, acc, 0)
    for n in range(1, 400):  # MAXLEN ~ trims whole macro nodes (100 entries) at a time
        await _upload(small, acc, n)
    c = await connect(bus)
    await c.identify(acc.token)
    await c.send({"type": "resume", "last_event_id": first})
    replayed, resumed = await _until_resumed(c)
    assert resumed["truncated"] is True
    assert replayed and replayed[-1]["data"]["n"] == 399


async def test_a_gap_is_reported_only_where_events_were_trimmed(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: Any,
) -> None:
    """A resume from the newest event trimmed away lost nothing after it; one from before
    that event lost it, whether the stream was trimmed by length or by age (Redis 6.2 keeps
    no record of a trim: a stream under its cap can only have lost events by age)."""
    acc = await make_account()
    sent = [await _upload(publisher, acc, n) for n in range(3)]
    stream = keys.client_events(acc.client_id)
    assert await redis.xtrim(stream, minid=sent[1], approximate=False) == 1  # sent[0] only
    before = f"{streamid.parse(sent[0])[0] - 1}-0"
    for age_s, after, truncated in ((86_400, sent[0], False), (1, before, True)):
        bus = await start_bus(bus_replay_age_s=age_s)
        c = await connect(bus.url)
        await c.identify(acc.token)
        await c.send({"type": "resume", "last_event_id": after})
        replayed, resumed = await _until_resumed(c)
        assert [m["id"] for m in replayed] == sent[1:]
        assert resumed["truncated"] is truncated, (age_s, after)


async def test_publisher_follows_the_bus_replay_settings(redis: Any) -> None:
    from filmstrip.settings import Settings
    from tests.support.settings import replace_settings

    pub = EventPublisher.from_settings(
        redis, replace_settings(Settings(), bus_replay_maxlen=7, bus_replay_age_s=60)
    )
    for n in range(300):
        await pub.publish(ev.STAGE_COMPLETED, photo_id="p", client_id="c", trace_id=f"{n:032x}")
    # MAXLEN ~ trims whole nodes, so "about 7" is at most one node (100 entries) more.
    assert await redis.xlen(keys.client_events("c")) <= 107
    assert 0 < await redis.pttl(keys.client_events("c")) <= 60_000


async def test_a_resume_id_beyond_redis_ids_is_the_clients_error_and_can_be_corrected(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    """Redis ids are two 64-bit numbers: a larger one is a bad message, not an outage, and
    the socket has not resumed, so the corrected resume replays."""
    acc = await make_account()
    sent = await _upload(publisher, acc)
    c = await connect(bus)
    await c.identify(acc.token)
    await c.barrier()
    for huge in ("99999999999999999999-99999999999999999999", "18446744073709551616",
                 "0-18446744073709551616"):  # fmt: skip
        await c.send({"type": "resume", "last_event_id": huge})
        err = await c.expect("error")
        assert err["code"] == "bad_message", (huge, err)
        assert "last_event_id" in err["message"]
    await c.send({"type": "resume", "last_event_id": "0"})
    replayed, resumed = await _until_resumed(c)
    assert [m["id"] for m in replayed] == [sent] and resumed["replayed"] == 1


async def test_a_resume_that_redis_refused_can_be_retried_without_a_gap(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher, redis: Any
) -> None:
    """A resume that failed (``unavailable``) did not happen: the retry is accepted and
    replays what was missed, skipping only what the socket already got live."""
    acc = await make_account()
    seen = await _upload(publisher, acc, 0)
    missed = await _upload(publisher, acc, 1)  # published while the client was away
    c = await connect(bus)
    await c.identify(acc.token)
    await c.barrier()  # ends the hold: live events flow before the resume
    live = await _upload(publisher, acc, 2)
    assert [m["id"] for m in await c.events(1)] == [live]
    # Redis refuses the replay's XRANGE (a real server error, as during a failover).
    await _on_every_node(redis, "ACL", "SETUSER", "default", "-xrange")
    try:
        await c.send({"type": "resume", "last_event_id": seen})
        refused = await c.expect("error")
        assert refused["code"] == "unavailable"
        # Redis's own words ("NOPERM ... xrange") stay in the log.
        assert "xrange" not in refused["message"].lower(), refused
    finally:
        await _on_every_node(redis, "ACL", "SETUSER", "default", "+xrange")
    await c.send({"type": "resume", "last_event_id": seen})
    replayed, resumed = await _until_resumed(c)
    assert [m["id"] for m in replayed] == [missed]  # not the live one again, and no gap
    assert resumed["last_event_id"] == live
    await c.barrier()


async def test_a_late_live_copy_of_an_event_from_before_identify_is_left_to_the_replay(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    publisher: EventPublisher,
    redis: Any,
) -> None:
    """An event's pub/sub copy can reach the bus after a socket identified (on a cluster
    it travels from the publishing node to the one the bus listens on). Its id is at or
    below the ``identified`` last_event_id, so it is history: not sent live, only by a
    replay, in order and once."""
    bus = await start_bus()
    acc = await make_account()
    old = await _upload(publisher, acc, 0)
    c = await connect(bus.url)
    assert (await c.identify(acc.token))["last_event_id"] == old
    [(_id, fields)] = await redis.xrange(keys.client_events(acc.client_id))
    bus.app[HUB].publish(old.encode() + b" " + fields[b"e"])  # the late copy
    await c.barrier()  # ends the hold
    new = await _upload(publisher, acc, 1)
    assert [m["id"] for m in await c.events(1)] == [new]
    await c.send({"type": "resume", "last_event_id": "0"})
    replayed, resumed = await _until_resumed(c)
    assert [m["id"] for m in replayed] == [old] and resumed["last_event_id"] == new
    await c.barrier()


async def test_the_replay_reader_reads_past_a_batch_both_ways(
    redis: Any, publisher: EventPublisher
) -> None:
    """More events than one XRANGE batch (200): all of them, once each, in either order."""
    sent = [
        await publisher.publish(ev.STAGE_COMPLETED, photo_id="p", client_id="c{batch}",
                                trace_id=f"{n:032x}")
        for n in range(450)
    ]  # fmt: skip
    reader = ReplayReader(redis)
    after = streamid.parse(sent[49])
    assert [i async for i, _ in reader.entries_after("c{batch}", after)] == sent[50:]
    newest = [i async for i, _ in reader.entries_newest_first("c{batch}", after)]
    assert newest == sent[50:][::-1]


async def test_the_publisher_trims_by_age_and_its_once_keys_expire(redis: Any) -> None:
    # Past the replay age events go (in whole nodes of 100: MINID ~ trims so), while
    # newer ones keep the stream alive; a once-key lasts the replay window, not for ever.
    pub = EventPublisher(redis, replay_maxlen=10_000, replay_age_s=2)

    def event(n: int) -> ev.Event:
        return pub.event(ev.STAGE_COMPLETED, photo_id="p", client_id="c", trace_id=f"{n:032x}")

    await pub.publish_events([event(n) for n in range(250)])
    await asyncio.sleep(1.2)
    await pub.publish_events([event(250)])  # the stream lives 2 s from here
    await asyncio.sleep(1.2)
    await pub.publish_events([event(251)], once_key="p:done")
    assert await redis.xlen(keys.client_events("c")) < 100
    assert 0 < await redis.pttl(keys.event_once("c", "p:done")) <= 2000


async def test_a_once_key_keeps_the_first_id_it_was_given(redis: Any) -> None:
    # A retried batch publishes its other events again but not its last one, and must not
    # move the once-key: a later retry still answers the first publication's id.
    pub = EventPublisher(redis)

    def event(n: int) -> ev.Event:
        return pub.event(ev.STAGE_COMPLETED, photo_id="p", client_id="c", trace_id=f"{n:032x}")

    first = await pub.publish_events([event(1), event(2)], once_key="p:batch")
    assert await pub.publish_events([event(3), event(4)], once_key="p:batch") == first
    assert await pub.publish_events([event(5)], once_key="p:batch") == first
    await forget_once(redis, "c", "p:batch")  # a photo processed anew: its outcome goes out
    assert await pub.publish_events([event(6)], once_key="p:batch") != first
