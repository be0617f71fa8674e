"""The bus's collector policy: survivors of a full collection are frozen, and closed
sockets' cycles are reclaimed once enough have accumulated."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from filmstrip.services.bus.gcpolicy import GcPolicy
from filmstrip.services.bus.hub import Hub


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def policy_state() -> Iterator[list[int]]:
    # Only the tests' own collections: an automatic one would freeze at its own moment.
    gc.disable()
    closed = [0]
    try:
        yield closed
    finally:
        gc.enable()
        gc.unfreeze()


def _collectable(objs: list[_Node]) -> int:
    """How many of ``objs`` a collection of any generation would look at."""
    ids = {id(o) for o in objs}
    return sum(1 for g in range(3) for o in gc.get_objects(generation=g) if id(o) in ids)


async def _settle() -> None:
    # _after_full runs through call_soon_threadsafe.
    for _ in range(3):
        await asyncio.sleep(0)


async def test_survivors_of_a_full_collection_are_frozen(policy_state: list[int]) -> None:
    policy = GcPolicy(lambda: policy_state[0], lambda: 0, closed_limit=2)
    policy.install()
    try:
        assert gc.get_freeze_count() > 0
        kept = [_Node() for _ in range(100)]
        assert _collectable(kept) == len(kept)
        gc.collect()
        await _settle()
        assert policy.freezes == 2
        # Everything alive after that collection is out of the collector's reach.
        assert _collectable(kept) == 0
    finally:
        policy.uninstall()


async def test_closed_sockets_cycles_are_reclaimed_after_the_limit(
    policy_state: list[int],
) -> None:
    policy = GcPolicy(lambda: policy_state[0], lambda: 0, closed_limit=2)
    policy.install()
    try:
        node = _Node()
        ref = weakref.ref(node)
        gc.collect()
        await _settle()  # node is now frozen
        del node
        gc.collect()
        await _settle()
        assert ref() is not None, "a frozen cycle must survive collections"
        policy_state[0] = 2  # two sockets closed: the limit
        gc.collect()
        await _settle()
        assert policy.unfreezes == 1
        gc.collect()  # the full collection after the unfreeze reclaims the cycle
        await _settle()
        assert ref() is None
        assert gc.get_freeze_count() > 0, "survivors are frozen again"
    finally:
        policy.uninstall()


async def test_a_surge_of_sockets_is_collected_and_frozen_once_quiet(
    policy_state: list[int],
) -> None:
    opened = [0]
    policy = GcPolicy(lambda: 0, lambda: opened[0], surge=10, quiet_s=0.02)
    policy.install()
    runner = asyncio.create_task(policy.run())
    try:
        await asyncio.sleep(0.1)
        assert policy.freezes == 1, "no surge yet: only the freeze at install"
        kept = [_Node() for _ in range(50)]
        opened[0] = 50
        # Two quiet periods (40 ms) and a full collection: polled for, since a loaded
        # machine can run those late past any fixed sleep of a few periods.
        async with asyncio.timeout(3):
            while True:
                if policy.freezes >= 2:
                    break
                await asyncio.sleep(0.01)
        assert policy.freezes == 2
        assert _collectable(kept) == 0
        await asyncio.sleep(0.1)
        assert policy.freezes == 2, "one collection per surge"
    finally:
        runner.cancel()
        policy.uninstall()


def test_the_hub_counts_sockets_opened_and_closed_once_each() -> None:
    # The policy's inputs in the bus process (services/bus/main.py).
    class Socket:  # what the hub touches of a Connection when adding and removing
        def __init__(self) -> None:
            self.rooms: set[str] = set()
            self.client_id = None

    hub = Hub(replay=None)  # type: ignore[arg-type]
    conns: list[Any] = [Socket() for _ in range(3)]
    for conn in conns:
        hub.add(conn)
    hub.remove(conns[0])
    hub.remove(conns[0])  # a second remove of the same socket is not a second closure
    assert (hub.added, hub.removed) == (3, 1)
