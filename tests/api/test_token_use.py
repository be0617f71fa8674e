"""A request's token has its last use stamped in the catalog, at most about once a minute
(per process by :class:`TokenUse`, across processes by the catalog's guarded update)."""

from __future__ import annotations

import asyncio

import pytest

from filmstrip.auth import hash_token, token_use
from filmstrip.auth.token_use import TokenUse
from tests.api.conftest import Api


async def _last_used(api: Api) -> str | None:
    rows = await api.state.catalog._fetchall(
        "SELECT last_used_at FROM tokens WHERE token_hash = ?", (hash_token(api.token),)
    )
    return rows[0][0]


async def test_a_request_stamps_its_tokens_last_use(api: Api) -> None:
    assert await _last_used(api) is None
    async with api.http.get(f"{api.url}/v1/photos", headers=api.auth) as resp:
        assert resp.status == 200
    first = await _last_used(api)
    assert first is not None
    await asyncio.sleep(0.01)
    async with api.http.get(f"{api.url}/v1/photos", headers=api.auth) as resp:
        assert resp.status == 200
    assert await _last_used(api) == first  # within the minute: not written again

    api.state.token_use = TokenUse(every_s=0)  # an interval of zero: every request writes
    async with api.http.get(f"{api.url}/v1/photos", headers=api.auth) as resp:
        assert resp.status == 200
    assert (await _last_used(api) or "") > first


async def test_an_unknown_token_costs_no_catalog_write(api: Api) -> None:
    """Only a token that authenticated is stamped: random tokens sent by anyone must not
    each cost a write (nor fill the memory of stamped tokens)."""
    bogus = "fst_" + "x" * 43
    async with api.http.get(
        f"{api.url}/v1/photos", headers={"Authorization": f"Bearer {bogus}"}
    ) as resp:
        assert resp.status == 401
    assert api.state.token_use.due(hash_token(bogus))  # never taken as recorded


class _Clock:
    """``time.monotonic`` for token_use, moved on by the test alone: with the real one, a
    test preempted for the interval (50 ms, on a loaded machine) saw a token due twice."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(token_use, "time", fake)
    return fake


def test_each_token_is_due_once_per_interval(clock: _Clock) -> None:
    uses = TokenUse(every_s=0.05, max_tokens=3)
    assert uses.due("a") and not uses.due("a") and uses.due("b")
    for name in "cdef":  # past max_tokens the memory is cut, never grows without bound
        uses.due(name)
    assert len(uses._recorded) <= 3
    clock.now += 0.049
    assert not uses.due("f")
    clock.now += 0.002
    assert uses.due("b")


def test_a_use_is_due_again_once_its_interval_has_passed(clock: _Clock) -> None:
    """Past the interval a token is due again (its last use keeps being stamped); when the
    memory is full, only the entries past the interval are dropped, never the fresh ones."""
    uses = TokenUse(every_s=0.1, max_tokens=2)
    assert uses.due("a")
    clock.now += 0.12
    assert uses.due("a")  # memory not full: due because its interval passed
    clock.now += 0.12
    assert uses.due("b")  # "a" is now past its interval, "b" fresh
    assert uses.due("c")  # full: "a" is dropped to make room, "b" kept
    assert not uses.due("b")
