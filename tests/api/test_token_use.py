"""A request's token has its last use stamped in the catalog, at most about once a minute
(per process by :class:`TokenUse`, across processes by the catalog's guarded update)."""

from __future__ import annotations

import asyncio
import time

from filmstrip.auth import hash_token
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


def test_each_token_is_due_once_per_interval() -> None:
    uses = TokenUse(every_s=0.05, max_tokens=3)
    assert uses.due("a") and not uses.due("a") and uses.due("b")
    for name in "cdef":  # past max_tokens the memory is cut, never grows without bound
        uses.due(name)
    assert len(uses._recorded) <= 3
    time.sleep(0.06)
    assert uses.due("b")


def test_a_use_is_due_again_once_its_interval_has_passed() -> None:
    """Past the interval a token is due again (its last use keeps being stamped); when the
    memory is full, only the entries past the interval are dropped, never the fresh ones."""
    uses = TokenUse(every_s=0.1, max_tokens=2)
    assert uses.due("a")
    time.sleep(0.12)
    assert uses.due("a")  # memory not full: due because its interval passed
    time.sleep(0.12)
    assert uses.due("b")  # "a" is now past its interval, "b" fresh
    assert uses.due("c")  # full: "a" is dropped to make room, "b" kept
    assert not uses.due("b")
