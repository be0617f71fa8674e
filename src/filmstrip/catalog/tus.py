"""Partial tus uploads kept in the catalog, for api processes that share no disk.

A row holds an upload's committed state: its offset, where its bytes are in the blob store
(the multipart upload's parts, each at least 5 MiB, then the tail: small objects, one per
PATCH, holding what followed the last part), the first bytes (for sniffing), and who may
write it now: a lease (owner, until) by the database's clock, taken for the length of a
PATCH and renewed while it streams, so no transaction stays open across the body. Every
write of a PATCH is fenced by the lease: one whose lease another process has taken
changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import orjson

from filmstrip.catalog.base import Catalog, Row, Transaction, parse_time, shift_time

_COLUMNS = (
    "id, client_id, length, upload_offset, metadata, content_type, head, photo_id, duplicate, "
    "created_at, expires_at, part_size, multipart_id, parts, next_part, tail, "
    "data_key, lease_owner"
)
# What ``commit`` may change, besides the offset and expiry it always sets.
_COMMITTABLE = frozenset(
    {"head", "multipart_id", "parts", "tail", "data_key", "content_type",
     "photo_id", "duplicate"}
)  # fmt: skip


class Part(msgspec.Struct, frozen=True, array_like=True):
    """One uploaded part of the multipart upload: its number, ETag and size."""

    number: int
    etag: str
    size: int


class Segment(msgspec.Struct, frozen=True, array_like=True):
    """One object of the tail: its key and size."""

    key: str
    size: int


_parts_decoder = msgspec.json.Decoder(list[Part])
_tail_decoder = msgspec.json.Decoder(list[Segment])


class TusRow(msgspec.Struct, kw_only=True):
    """An upload's committed state."""

    id: str
    client_id: str
    length: int
    offset: int
    metadata: dict[str, str]
    content_type: str | None
    head: bytes
    photo_id: str | None
    duplicate: bool
    created_at: float
    expires_at: float
    part_size: int
    multipart_id: str | None
    parts: list[Part]
    next_part: int
    tail: list[Segment]
    data_key: str | None
    lease_owner: str | None


def _row(row: Row) -> TusRow:
    return TusRow(
        id=row[0],
        client_id=row[1],
        length=int(row[2]),
        offset=int(row[3]),
        metadata=orjson.loads(row[4]),
        content_type=row[5],
        head=bytes.fromhex(row[6] or ""),
        photo_id=row[7],
        duplicate=bool(row[8]),
        created_at=parse_time(row[9]).timestamp(),
        expires_at=parse_time(row[10]).timestamp(),
        part_size=int(row[11]),
        multipart_id=row[12],
        parts=_parts_decoder.decode(row[13] or "[]"),
        next_part=int(row[14]),
        tail=_tail_decoder.decode(row[15] or "[]"),
        data_key=row[16],
        lease_owner=row[17],
    )


def _value(column: str, value: Any) -> Any:
    if column in ("parts", "tail"):
        return msgspec.json.encode(value).decode()
    if column == "head":
        return bytes(value).hex()
    if column == "duplicate":
        return int(bool(value))
    return value


class TusUploads:
    """The ``tus_uploads`` table over a catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def create(
        self,
        *,
        upload_id: str,
        client_id: str,
        length: int,
        metadata: dict[str, str],
        part_size: int,
        ttl_s: float,
        admit: Callable[[int, int], None] | None = None,
    ) -> TusRow:
        """A new, empty upload. ``admit`` is shown the number and declared bytes of the
        client's open uploads while no other creation of that client runs (its client row
        is locked), and raises to refuse this one."""

        def work(tx: Transaction) -> TusRow:
            now = tx.now()
            if admit is not None:
                tx.fetchall("SELECT id FROM clients WHERE id = ?", (client_id,), lock=True)
                rows = tx.fetchall(
                    "SELECT COUNT(*), COALESCE(SUM(length), 0) FROM tus_uploads "
                    "WHERE client_id = ? AND photo_id IS NULL AND expires_at > ?",
                    (client_id, now),
                )
                admit(int(rows[0][0]), int(rows[0][1]))
            tx.execute(
                "INSERT INTO tus_uploads (id, client_id, length, upload_offset, metadata, "
                "created_at, expires_at, part_size) VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                (
                    upload_id, client_id, length, orjson.dumps(metadata).decode(), now,
                    shift_time(now, ttl_s), part_size,
                ),
            )  # fmt: skip
            return _row(self._select(tx, upload_id))

        return await self.catalog.run_transaction(work)

    @staticmethod
    def _select(tx: Transaction, upload_id: str) -> Row:
        return tx.fetchall(f"SELECT {_COLUMNS} FROM tus_uploads WHERE id = ?", (upload_id,))[0]

    async def get(self, upload_id: str) -> TusRow | None:
        """The upload, unless unknown or expired (by the database's clock)."""

        def work(tx: Transaction) -> TusRow | None:
            rows = tx.fetchall(
                f"SELECT {_COLUMNS} FROM tus_uploads WHERE id = ? AND expires_at > ?",
                (upload_id, tx.now()),
            )
            return _row(rows[0]) if rows else None

        return await self.catalog.run_transaction(work)

    # --- the lease -----------------------------------------------------------------------

    async def lease(self, upload_id: str, owner: str, ttl_s: float) -> bool | None:
        """Take the upload's lease for ``ttl_s`` if nobody holds it (or theirs ran out);
        None if there is no such upload."""

        def work(tx: Transaction) -> bool | None:
            now = tx.now()
            taken = tx.execute(
                "UPDATE tus_uploads SET lease_owner = ?, lease_until = ? WHERE id = ? "
                "AND (lease_owner IS NULL OR lease_until <= ?)",
                (owner, shift_time(now, ttl_s), upload_id, now),
            )
            if taken:
                return True
            exists = tx.fetchall("SELECT 1 FROM tus_uploads WHERE id = ?", (upload_id,))
            return False if exists else None

        return await self.catalog.run_transaction(work)

    async def renew(self, upload_id: str, owner: str, ttl_s: float) -> bool:
        """Extend the lease by ``ttl_s`` from now; False if it is not ours any more."""
        changed = await self.catalog.run_transaction(
            lambda tx: tx.execute(
                "UPDATE tus_uploads SET lease_until = ? WHERE id = ? AND lease_owner = ?",
                (shift_time(tx.now(), ttl_s), upload_id, owner),
            )
        )
        return changed > 0

    async def release(self, upload_id: str, owner: str) -> None:
        """Let the lease go, if it is still ours."""
        await self.catalog.run_transaction(
            lambda tx: tx.execute(
                "UPDATE tus_uploads SET lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_owner = ?",
                (upload_id, owner),
            )
        )

    # --- fenced writes -------------------------------------------------------------------

    async def reserve_part(self, upload_id: str, owner: str) -> int | None:
        """A part number never handed out before for this upload (so a writer whose lease
        lapsed cannot overwrite a part its successor recorded); None if not ours."""

        def work(tx: Transaction) -> int | None:
            changed = tx.execute(
                "UPDATE tus_uploads SET next_part = next_part + 1 WHERE id = ? AND lease_owner = ?",
                (upload_id, owner),
            )
            if not changed:
                return None
            rows = tx.fetchall("SELECT next_part FROM tus_uploads WHERE id = ?", (upload_id,))
            return int(rows[0][0]) - 1

        return await self.catalog.run_transaction(work)

    async def commit(
        self,
        upload_id: str,
        owner: str,
        *,
        offset: int | None = None,
        ttl_s: float | None = None,
        **changes: Any,
    ) -> TusRow | None:
        """Record the new state, expiry sliding ``ttl_s`` from now; the row as committed,
        or None (nothing changed) if the lease is not ours."""
        unknown = set(changes) - _COMMITTABLE
        if unknown:
            raise ValueError(f"cannot commit {sorted(unknown)}")

        def work(tx: Transaction) -> TusRow | None:
            sets = [f"{column} = ?" for column in changes]
            params = [_value(column, value) for column, value in changes.items()]
            if offset is not None:
                sets.append("upload_offset = ?")
                params.append(offset)
            if ttl_s is not None:
                sets.append("expires_at = ?")
                params.append(shift_time(tx.now(), ttl_s))
            if not sets:
                rows = tx.fetchall(
                    f"SELECT {_COLUMNS} FROM tus_uploads WHERE id = ? AND lease_owner = ?",
                    (upload_id, owner),
                )
                return _row(rows[0]) if rows else None
            changed = tx.execute(
                f"UPDATE tus_uploads SET {', '.join(sets)} WHERE id = ? AND lease_owner = ?",
                (*params, upload_id, owner),
            )
            return _row(self._select(tx, upload_id)) if changed else None

        return await self.catalog.run_transaction(work)

    async def delete(self, upload_id: str, owner: str | None = None) -> bool:
        """Forget the upload (only while ``owner`` holds its lease, if given)."""
        sql = "DELETE FROM tus_uploads WHERE id = ?"
        params: tuple[str, ...] = (upload_id,)
        if owner is not None:
            sql += " AND lease_owner = ?"
            params = (upload_id, owner)
        return await self.catalog.run_transaction(lambda tx: tx.execute(sql, params)) > 0

    # --- expiry --------------------------------------------------------------------------

    async def expired(self, *, after_s: float = 0.0, limit: int = 100) -> list[TusRow]:
        """Uploads expired by the database's clock (``after_s`` later) that nobody is
        writing now."""

        def work(tx: Transaction) -> list[TusRow]:
            now = tx.now()
            rows = tx.fetchall(
                f"SELECT {_COLUMNS} FROM tus_uploads WHERE expires_at <= ? "
                "AND (lease_owner IS NULL OR lease_until <= ?) ORDER BY expires_at LIMIT ?",
                (shift_time(now, after_s), now, limit),
            )
            return [_row(r) for r in rows]

        return await self.catalog.run_transaction(work)

    async def claim_expired(
        self, upload_id: str, owner: str, ttl_s: float, *, after_s: float = 0.0
    ) -> bool:
        """Take the lease of an upload still expired (``after_s`` later) that nobody holds,
        to delete it; False if a writer holds it or it was used meanwhile."""

        def work(tx: Transaction) -> bool:
            now = tx.now()
            return (
                tx.execute(
                    "UPDATE tus_uploads SET lease_owner = ?, lease_until = ? WHERE id = ? "
                    "AND expires_at <= ? AND (lease_owner IS NULL OR lease_until <= ?)",
                    (owner, shift_time(now, ttl_s), upload_id, shift_time(now, after_s), now),
                )
                > 0
            )

        return await self.catalog.run_transaction(work)

    async def present(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are uploads (expired or not)."""
        rows = await self.catalog._fetch_in("SELECT id FROM tus_uploads WHERE id IN ({marks})", ids)
        return {str(r[0]) for r in rows}
