"""The rows of partial tus uploads (filmstrip/catalog/tus.py) on both backends: one lease
holder at a time by the database's clock, fenced writes, part numbers never handed out
twice, admission counted with the client locked, expiry by the database's clock."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from filmstrip.catalog import Catalog
from filmstrip.catalog.tus import Part, Segment, TusUploads
from tests.catalog.conftest import Backend


async def _upload(
    rows: TusUploads, client: str = "c1", length: int = 100, ttl_s: float = 60
) -> str:
    upload_id = uuid.uuid4().hex
    await rows.create(
        upload_id=upload_id, client_id=client, length=100, metadata={"k": "v"},
        part_size=8 << 20, ttl_s=ttl_s,
    )  # fmt: skip
    return upload_id


async def test_the_leftover_sweeps_lookup_answers_beside_names_no_database_can_hold(
    catalog: Catalog,
) -> None:
    # The sweep asks about upload ids read from the blob store's key names: a NUL (which
    # PostgreSQL refuses) or bytes that were not UTF-8 (which no driver encodes) are no
    # upload, and must not fail the lookup for the rest.
    rows = TusUploads(catalog)
    upload = await _upload(rows)
    assert await rows.present(["x\x00", "\udcff", upload]) == {upload}


async def test_one_lease_holder_at_a_time_and_a_lapsed_one_is_fenced_out(
    catalog: Catalog,
) -> None:
    rows = TusUploads(catalog)
    upload = await _upload(rows)
    assert await rows.lease(upload, "a", 0.3) is True
    assert await rows.lease(upload, "b", 0.3) is False
    assert await rows.renew(upload, "a", 0.3)
    assert await rows.lease("0" * 32, "b", 0.3) is None  # no such upload
    await asyncio.sleep(0.4)  # a stalls past its lease
    assert await rows.lease(upload, "b", 10) is True
    # The late holder can neither renew, nor write, nor take a part number.
    assert not await rows.renew(upload, "a", 10)
    assert await rows.commit(upload, "a", offset=50, tail=[Segment("x", 50)]) is None
    assert await rows.reserve_part(upload, "a") is None
    row = await rows.commit(upload, "b", offset=10, tail=[Segment("y", 10)])
    assert row is not None and (row.offset, row.tail, row.lease_owner) == (
        10,
        [Segment("y", 10)],
        "b",
    )
    await rows.release(upload, "a")  # not its to release
    assert await rows.lease(upload, "c", 10) is False
    await rows.release(upload, "b")
    assert await rows.lease(upload, "c", 10) is True


async def test_part_numbers_are_never_handed_out_twice(catalog: Catalog) -> None:
    """Not even after a holder's parts were discarded: a writer whose lease lapsed may
    still be uploading the number it got, and must not replace its successor's part."""
    rows = TusUploads(catalog)
    upload = await _upload(rows)
    assert await rows.lease(upload, "a", 0.2)
    assert await rows.reserve_part(upload, "a") == 1
    await asyncio.sleep(0.3)
    assert await rows.lease(upload, "b", 10)
    assert await rows.reserve_part(upload, "b") == 2
    row = await rows.commit(upload, "b", parts=[Part(2, "etag", 8 << 20)], offset=8 << 20)
    assert row is not None and row.parts == [Part(2, "etag", 8 << 20)]
    assert await rows.reserve_part(upload, "b") == 3


async def test_admission_sees_the_clients_open_uploads_one_creation_at_a_time(
    backend: Backend,
) -> None:
    """Creations of one client from several processes at once: each is counted with the
    others already made, so exactly the allowance gets through."""
    catalogs = [backend.catalog() for _ in range(3)]
    for each in catalogs:
        await each.connect()
    try:
        await catalogs[0].create_client("c1", "one", is_admin=False)

        def admit(count: int, total: int) -> None:
            if count >= 4:
                raise PermissionError(count)

        async def create(rows: TusUploads) -> bool:
            try:
                await rows.create(
                    upload_id=uuid.uuid4().hex, client_id="c1", length=10, metadata={},
                    part_size=8 << 20, ttl_s=60, admit=admit,
                )  # fmt: skip
            except PermissionError:
                return False
            return True

        made = await asyncio.gather(*(create(TusUploads(catalogs[i % 3])) for i in range(12)))
        assert sorted(made) == [False] * 8 + [True] * 4
    finally:
        for each in catalogs:
            await each.close()


async def test_expiry_goes_by_the_databases_clock(catalog: Catalog) -> None:
    rows = TusUploads(catalog)
    upload = await _upload(rows, ttl_s=60)
    assert await rows.get(upload) is not None
    assert await rows.expired() == []
    assert [r.id for r in await rows.expired(after_s=61)] == [upload]
    # A writer holds it: not claimed, even expired.
    assert await rows.lease(upload, "w", 10)
    assert not await rows.claim_expired(upload, "sweeper", 10, after_s=61)
    await rows.release(upload, "w")
    assert not await rows.claim_expired(upload, "sweeper", 10)  # not expired yet
    assert await rows.claim_expired(upload, "sweeper", 10, after_s=61)
    assert await rows.delete(upload, "sweeper")
    assert await rows.get(upload) is None


async def test_a_commit_slides_the_expiry_from_the_databases_now(catalog: Catalog) -> None:
    """Uploads expire after the expiry without a PATCH, not after their creation: each
    commit moves ``Upload-Expires``, so a long upload that goes on is never swept."""
    rows = TusUploads(catalog)
    upload = await _upload(rows, ttl_s=60)
    assert await rows.lease(upload, "w", 10)
    row = await rows.commit(upload, "w", offset=10, ttl_s=600)
    assert row is not None and row.expires_at - row.created_at >= 599
    await rows.release(upload, "w")
    assert await rows.expired(after_s=61) == []
    assert [r.id for r in await rows.expired(after_s=601)] == [upload]


async def test_a_commit_cannot_touch_the_lease(catalog: Catalog) -> None:
    rows = TusUploads(catalog)
    upload = await _upload(rows)
    assert await rows.lease(upload, "a", 10)
    with pytest.raises(ValueError):
        await rows.commit(upload, "a", lease_owner="b")
