"""A socket joins only its own client's rooms; everything else is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from filmstrip.auth import hash_token
from filmstrip.catalog import Catalog
from filmstrip.events import EventPublisher
from filmstrip.protocols import events as ev
from filmstrip.services.bus.app import HUB, RECHECKER
from tests.bus.support import Account, BusClient, RunningBus

Connect = Callable[..., Awaitable[BusClient]]
MakeAccount = Callable[..., Awaitable[Account]]


async def _only_own_arrives(
    c: BusClient,
    publisher: EventPublisher,
    type_: str,
    alice: Account,
    mallory: Account,
    *,
    sessions: bool = False,
) -> dict[str, object]:
    """Publish alice's event, then mallory's; the first to reach mallory's socket must be
    hers: had alice's been routed here, it would have come first."""
    await publisher.publish(
        type_, photo_id=alice.photos[0], client_id=alice.client_id, trace_id="a" * 32,
        session_id=alice.sessions[0] if sessions else None,
    )  # fmt: skip
    own = await publisher.publish(
        type_, photo_id=mallory.photos[0], client_id=mallory.client_id, trace_id="m" * 32,
        session_id=mallory.sessions[0] if sessions else None,
    )  # fmt: skip
    [msg] = await c.events(1)
    assert msg["id"] == own
    return msg


async def test_unknown_token_is_refused_and_closed(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect
) -> None:
    # A long identify timeout: the close must come from the refusal, not from that timer.
    bus = await start_bus(bus_identify_timeout_s=60.0)
    c = await connect(bus.url)
    await c.send({"type": "identify", "token": "fst_not-a-token"})
    err = await c.expect("error")
    assert err["code"] == "unauthorized"
    assert await c.closed() == 1008


async def test_revoked_token_is_refused(
    bus: str, connect: Connect, make_account: MakeAccount, catalog: Catalog
) -> None:
    acc = await make_account()
    await catalog.revoke_token(hash_token(acc.token))
    c = await connect(bus)
    await c.send({"type": "identify", "token": acc.token})
    assert (await c.expect("error"))["code"] == "unauthorized"


async def test_another_clients_session_is_forbidden(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    alice, mallory = await make_account(), await make_account()
    c = await connect(bus)
    await c.send({"type": "identify", "token": mallory.token, "session_id": alice.sessions[0]})
    assert (await c.expect("error"))["code"] == "forbidden"
    # The socket is still unidentified: it may retry with its own session, and it never
    # sees alice's upload events.
    await c.identify(mallory.token, session_id=mallory.sessions[0])
    msg = await _only_own_arrives(c, publisher, ev.PHOTO_UPLOADED, alice, mallory, sessions=True)
    assert msg["metadata"]["client_id"] == mallory.client_id


async def test_another_clients_photo_is_forbidden(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    alice, mallory = await make_account(), await make_account()
    c = await connect(bus)
    await c.identify(mallory.token)
    await c.send({"type": "subscribe", "photo_id": alice.photos[0]})
    err = await c.expect("error")
    assert err["code"] == "forbidden"
    # Unknown photos get the same answer, so ids cannot be probed.
    await c.send({"type": "subscribe", "photo_id": "p_does_not_exist"})
    assert (await c.expect("error"))["code"] == "forbidden"
    await _only_own_arrives(c, publisher, ev.PHOTO_COMPLETED, alice, mallory)
    await c.barrier()


async def test_ids_holding_a_nul_are_not_yours_on_either_catalog(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    # PostgreSQL cannot compare text holding a NUL: its catalog refused the lookup, and the
    # socket got no answer, where on SQLite it got "not yours" like any unknown id.
    acc = await make_account()
    c = await connect(bus)
    await c.send({"type": "identify", "token": acc.token, "session_id": "s\x00"})
    assert (await c.expect("error"))["code"] == "forbidden"
    identified = await c.identify(acc.token, photo_ids=["p\x00", acc.photos[0]])
    assert identified["photo_ids"] == [acc.photos[0]]
    await c.send({"type": "subscribe", "photo_id": acc.photos[0] + "\x00"})
    assert (await c.expect("error"))["code"] == "forbidden"
    await c.barrier()


async def test_another_clients_photo_named_at_identify_is_left_out(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    alice, mallory = await make_account(), await make_account()
    c = await connect(bus)
    identified = await c.identify(mallory.token, photo_ids=[alice.photos[0], mallory.photos[0]])
    assert identified["photo_ids"] == [mallory.photos[0]]
    await _only_own_arrives(c, publisher, ev.PHOTO_COMPLETED, alice, mallory)
    await c.barrier()


async def test_another_clients_room_cannot_be_claimed(
    bus: str, connect: Connect, make_account: MakeAccount, publisher: EventPublisher
) -> None:
    alice, mallory = await make_account(), await make_account()
    c = await connect(bus)
    # The seed let a socket name its client id; the protocol has no such field now.
    await c.send({"type": "identify", "token": mallory.token, "client_id": alice.client_id})
    assert (await c.expect("error"))["code"] == "bad_message"
    await c.identify(mallory.token)
    await _only_own_arrives(c, publisher, ev.PHOTO_UPLOADED, alice, mallory)
    await c.barrier()


async def test_messages_before_identify_are_refused(
    bus: str, connect: Connect, make_account: MakeAccount
) -> None:
    acc = await make_account()
    c = await connect(bus)
    for body in (
        {"type": "subscribe", "photo_id": acc.photos[0]},
        {"type": "unsubscribe", "photo_id": acc.photos[0]},
        {"type": "resume", "last_event_id": "0"},
    ):
        await c.send(body)
        assert (await c.expect("error"))["code"] == "not_identified"
    await c.barrier()  # ping is allowed in any state
    await c.identify(acc.token)
    await c.send({"type": "identify", "token": acc.token})
    assert (await c.expect("error"))["code"] == "already_identified"


async def test_unidentified_socket_is_closed_after_the_timeout(bus: str, connect: Connect) -> None:
    c = await connect(bus)  # bus_identify_timeout_s is 1 s in these tests
    assert await c.closed(within=5) == 1008


async def test_sockets_per_client_are_capped(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect, make_account: MakeAccount
) -> None:
    # A long identify timeout: the close must come from the refusal, not from that timer.
    bus = await start_bus(bus_identify_timeout_s=60.0)
    acc = await make_account()
    limit = 20  # the default bus_max_sockets_per_client
    held = [await connect(bus.url) for _ in range(limit)]
    for c in held:
        await c.identify(acc.token)
    extra = await connect(bus.url)
    await extra.send({"type": "identify", "token": acc.token})
    assert (await extra.expect("error"))["code"] == "too_many_sockets"
    assert await extra.closed() == 1008


async def test_a_closed_socket_frees_its_place_under_the_cap_at_once(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect, make_account: MakeAccount
) -> None:
    """A client at its cap that closes a socket may open another straight away, not only
    once the closed one's count has expired (three presence rounds, here 30 s)."""
    bus = await start_bus(bus_max_sockets_per_client=2, bus_presence_interval_s=10.0)
    acc = await make_account()
    first, second = await connect(bus.url), await connect(bus.url)
    await first.identify(acc.token)
    await second.identify(acc.token)
    await first.ws.close()
    async with asyncio.timeout(5):
        while True:
            if bus.app[HUB].identified_count == 1:
                break
            await asyncio.sleep(0.01)
    third = await connect(bus.url)
    await third.identify(acc.token)


async def test_the_cap_holds_for_sockets_open_longer_than_a_count_lasts(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect, make_account: MakeAccount
) -> None:
    """A socket's count lasts three presence rounds (0.6 s here) unless its bus renews
    it: a socket open for longer still counts."""
    bus = await start_bus(bus_max_sockets_per_client=1)
    acc = await make_account()
    held = await connect(bus.url)
    await held.identify(acc.token)
    await asyncio.sleep(1.5)
    extra = await connect(bus.url)
    await extra.send({"type": "identify", "token": acc.token})
    assert (await extra.expect("error"))["code"] == "too_many_sockets"
    await held.barrier()


async def test_revoked_tokens_sockets_are_closed_at_the_next_recheck(
    start_bus: Callable[..., Awaitable[RunningBus]],
    connect: Connect,
    make_account: MakeAccount,
    catalog: Catalog,
) -> None:
    bus = await start_bus()
    acc, other = await make_account(), await make_account()
    # Two sockets of the revoked token: the token is checked once, both are closed.
    revoked = [await connect(bus.url), await connect(bus.url)]
    for c in revoked:
        await c.identify(acc.token)
    kept = await connect(bus.url)
    await kept.identify(other.token)
    assert await bus.app[RECHECKER].sweep() == 0
    await catalog.revoke_token(hash_token(acc.token))
    assert await bus.app[RECHECKER].sweep() == 2
    for c in revoked:
        err = await c.expect("error")
        assert (err["code"], err["message"]) == ("unauthorized", "token revoked")
        assert await c.closed() == 1008
    await kept.barrier()


async def test_photo_rooms_per_socket_are_capped(
    start_bus: Callable[..., Awaitable[RunningBus]], connect: Connect, make_account: MakeAccount
) -> None:
    bus = await start_bus(bus_max_photos_per_socket=1)
    acc = await make_account(photos=2)
    c = await connect(bus.url)
    await c.identify(acc.token)
    await c.subscribe(acc.photos[0])
    await c.subscribe(acc.photos[0])  # already in it: still fine
    await c.send({"type": "subscribe", "photo_id": acc.photos[1]})
    assert (await c.expect("error"))["code"] == "too_many_rooms"
    # The same cap at identify: a photo named twice is one room, two photos are too many.
    twice = await connect(bus.url)
    joined = await twice.identify(acc.token, photo_ids=[acc.photos[0], acc.photos[0]])
    assert joined["photo_ids"] == [acc.photos[0]]
    both = await connect(bus.url)
    await both.send({"type": "identify", "token": acc.token, "photo_ids": acc.photos})
    assert (await both.expect("error"))["code"] == "too_many_rooms"
