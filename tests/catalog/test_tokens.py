"""Tokens in the catalog: their last use, stamped at most once per interval, and listing
them without their hashes (on both backends)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from filmstrip.catalog import Catalog, CatalogMissing, open_catalog
from filmstrip.settings import Settings
from tests.catalog.conftest import Backend
from tests.support.settings import replace_settings


async def _last_used(catalog: Catalog, token_hash: str) -> str | None:
    rows = await catalog._fetchall(
        "SELECT last_used_at FROM tokens WHERE token_hash = ?", (token_hash,)
    )
    return rows[0][0] if rows else None


async def test_a_use_is_stamped_once_per_interval(catalog: Catalog) -> None:
    await catalog.create_client("c1", "alice", is_admin=False)
    await catalog.add_token("h" * 64, "c1")
    assert await _last_used(catalog, "h" * 64) is None

    assert await catalog.record_token_use("h" * 64, fresh_s=60)
    first = await _last_used(catalog, "h" * 64)
    assert first is not None
    # Within the interval (another api process, say) the stamp stays as it is.
    assert not await catalog.record_token_use("h" * 64, fresh_s=60)
    assert await _last_used(catalog, "h" * 64) == first
    # Past it, the stamp moves on (stamps are to the millisecond).
    await asyncio.sleep(0.01)
    assert await catalog.record_token_use("h" * 64, fresh_s=0)
    assert (await _last_used(catalog, "h" * 64) or "") > first


async def test_listing_shows_clients_roles_and_times_never_the_hash(catalog: Catalog) -> None:
    await catalog.create_client("c1", "bob", is_admin=False)
    await catalog.create_client("c2", "alice", is_admin=True)
    await catalog.add_token("a" * 64, "c1")
    await catalog.add_token("b" * 64, "c2")
    await catalog.add_token("c" * 64, "c1")
    await catalog.record_token_use("a" * 64)
    await catalog.revoke_token("c" * 64)

    live = await catalog.list_tokens()
    assert [(t.client_name, t.is_admin) for t in live] == [("alice", True), ("bob", False)]
    assert live[0].last_used_at is None and live[1].last_used_at is not None
    assert all(t.revoked_at is None for t in live)
    assert not any("a" * 64 in repr(t) or "b" * 64 in repr(t) for t in live)
    every = await catalog.list_tokens(revoked=True)
    assert [t.client_name for t in every] == ["alice", "bob", "bob"]
    assert every[2].revoked_at is not None


async def test_revoking_counts_and_stamps_only_live_tokens(catalog: Catalog) -> None:
    """A second revoke is "no such live token" and keeps the first time of revocation;
    revoking a client's tokens counts only those still live."""
    await catalog.create_client("c1", "bob", is_admin=False)
    for h in "abc":
        await catalog.add_token(h * 64, "c1")
    assert await catalog.revoke_token("a" * 64)
    (first,) = [t.revoked_at for t in await catalog.list_tokens(revoked=True) if t.revoked_at]
    await asyncio.sleep(0.01)  # stamps are to the millisecond
    assert not await catalog.revoke_token("a" * 64)
    assert await catalog.revoke_client_tokens("c1") == 2
    stamps = [t.revoked_at for t in await catalog.list_tokens(revoked=True)]
    assert stamps.count(first) == 1 and all(stamps)


async def test_open_without_create_refuses_a_catalog_that_is_not_there(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.name == "sqlite":
        missing = replace_settings(Settings(), data_dir=str(tmp_path / "elsewhere"))
        with pytest.raises(CatalogMissing):
            await open_catalog(missing, create=False)
        assert not (tmp_path / "elsewhere").exists(), "looking must not make the file"
    # An existing database without the catalog's tables is no catalog either.
    empty = replace_settings(Settings(), database_url=backend.url)
    with pytest.raises(CatalogMissing):
        await open_catalog(empty, create=False)
    made = await open_catalog(empty)
    await made.close()
    found = await open_catalog(empty, create=False)
    await found.close()
