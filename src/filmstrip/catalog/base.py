"""The catalog interface, written once in portable SQL over a few driver primitives.

A driver (SQLite, PostgreSQL) supplies connection handling and the primitives; every query
here uses ``?`` placeholders that a driver may rewrite.

Times that decide repairs (a photo's ``updated_at``, an outbox entry's ``created_at``) are
stamped from the database's clock inside the transaction that writes them, and callers
ask for rows "older than N seconds" by that same clock, so hosts whose clocks disagree
still agree on what is stuck.
"""

from __future__ import annotations

import abc
import asyncio
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
import orjson

from filmstrip.catalog.migrations import migrate
from filmstrip.catalog.models import (
    ClientRecord,
    DerivativeRecord,
    OutboxEntry,
    PhotoRecord,
    PhotoStatus,
    SessionRecord,
    TokenRecord,
)
from filmstrip.catalog.transaction import Row as Row
from filmstrip.catalog.transaction import Transaction as Transaction
from filmstrip.errors import DataError

T = TypeVar("T")

PHOTO_COLUMNS = (
    "id, client_id, session_id, blob_key, content_type, bytes, sha256, status, job_id, "
    "trace_id, uploaded_at, taken_at, processed_at, processing_metadata, derivatives, "
    "processing_error, error_category, updated_at, error_code, filename, pipeline, priority"
)

_derivatives_decoder = msgspec.json.Decoder(list[DerivativeRecord])


def utcnow() -> str:
    """This host's clock as the catalog stores times: ISO-8601 UTC with milliseconds. For
    times shown to people (``uploaded_at``), never for times that decide repairs."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """``moment`` (aware) as the catalog stores times: ``2026-01-01T00:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(stamp: str) -> datetime:
    """A time as the catalog stores it, as an aware datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def shift_time(stamp: str, seconds: float) -> str:
    """The stored time ``stamp`` moved by ``seconds`` (negative: earlier)."""
    return format_time(parse_time(stamp) + timedelta(seconds=seconds))


async def settle(done: asyncio.Future[T]) -> T:
    """Await a transaction handed to another thread; a cancelled caller still waits for it
    to end (what it did is settled), then sees the cancellation."""
    # Marks the outcome as seen when a cancelled caller is no longer there to see it.
    done.add_done_callback(lambda f: f.cancelled() or f.exception())
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        if not done.done():
            await asyncio.wait([done])
        raise


# Under sort="taken", an undated photo's keyset key: its upload time behind this prefix, so
# undated photos follow the dated ones newest upload first, and a cursor says which part
# of the listing it continues.
UNDATED = "undated:"


def taken_sort_key(photo: PhotoRecord) -> str:
    """The keyset key of ``photo`` in the listing by date taken."""
    return photo.taken_at or f"{UNDATED}{photo.uploaded_at}"


def search_key(text: str) -> str:
    """``text`` as the filename search compares it: case-folded in Python, so SQLite and
    PostgreSQL match alike (each database's LOWER folds differently beyond ASCII)."""
    return unicodedata.normalize("NFC", text).casefold()


# NUL, and the lone surrogates of bytes that were not UTF-8: see _keyable.
_UNKEYABLE = re.compile("[\x00\ud800-\udfff]")


def _keyable(*values: str | None) -> bool:
    """Whether ``values`` could be keys in either catalog: PostgreSQL's text holds no NUL
    and refuses a query that compares one (SQLite simply finds no row), and neither driver
    can encode a lone surrogate (a name that was not UTF-8, as ``os.listdir`` gives it).
    A lookup by such a value (an id a client names, a key a listing found) answers "none"
    on both without asking."""
    return not any(v is not None and _UNKEYABLE.search(v) for v in values)


def _like_pattern(text: str) -> str:
    """A LIKE pattern (``ESCAPE '\\'``) matching any value that contains ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _follow_up(owed: Iterable[str], results: Mapping[str, Any]) -> str | None:
    """The ``follow_up`` column: the owed stages without a result yet, NULL if none."""
    awaited = [name for name in owed if name not in results]
    return orjson.dumps(awaited).decode() if awaited else None


def _photo(row: Row) -> PhotoRecord:
    return PhotoRecord(
        id=row[0],
        client_id=row[1],
        session_id=row[2],
        blob_key=row[3],
        content_type=row[4],
        bytes=int(row[5]),
        sha256=row[6],
        status=row[7],
        job_id=row[8],
        trace_id=row[9],
        uploaded_at=row[10],
        taken_at=row[11],
        processed_at=row[12],
        processing_metadata=orjson.loads(row[13]) if row[13] else None,
        derivatives=_derivatives_decoder.decode(row[14]) if row[14] else [],
        processing_error=row[15],
        error_category=row[16],
        updated_at=row[17],
        error_code=row[18],
        filename=row[19],
        pipeline=row[20],
        priority=None if row[21] is None else int(row[21]),
    )


def _client(row: Row | None) -> ClientRecord | None:
    if row is None:
        return None
    return ClientRecord(id=row[0], name=row[1], is_admin=bool(row[2]), created_at=row[3])


def insert_statements(
    photo: PhotoRecord, outbox: OutboxEntry | None, now: str
) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements that record ``photo`` and its outbox entry, to run in one transaction
    whose database clock reads ``now`` (the row's ``updated_at``, the entry's ``created_at``)."""
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (
            f"INSERT INTO photos ({PHOTO_COLUMNS}, filename_key) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                photo.id, photo.client_id, photo.session_id, photo.blob_key,
                photo.content_type, photo.bytes, photo.sha256, photo.status, photo.job_id,
                photo.trace_id, photo.uploaded_at, photo.taken_at, photo.processed_at,
                None, None, None, None, now, None, photo.filename, photo.pipeline,
                photo.priority, None if photo.filename is None else search_key(photo.filename),
            ),
        )
    ]  # fmt: skip
    statements.append(_charge(photo.client_id, photo.bytes))
    if outbox is not None:
        statements.append(
            (
                "INSERT INTO outbox (job_id, photo_id, payload, priority, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (outbox.job_id, outbox.photo_id, outbox.payload, outbox.priority, now),
            )
        )  # fmt: skip
    return statements


def _charge(client_id: str, size: int) -> tuple[str, tuple[Any, ...]]:
    """The statement that adds ``size`` (negative to refund) to a client's stored bytes."""
    return (
        "UPDATE clients SET stored_bytes = COALESCE(stored_bytes, 0) + ? WHERE id = ?",
        (size, client_id),
    )


def _status_statement(photo_id: str, status: str, now: str) -> tuple[str, tuple[Any, ...]]:
    """The statement that gives a photo ``status`` with any recorded error cleared."""
    return (
        "UPDATE photos SET status = ?, processing_error = NULL, error_category = NULL, "
        "error_code = NULL, updated_at = ? WHERE id = ?",
        (status, now, photo_id),
    )


def _forget_outbox(tx: Transaction, job_ids: Collection[str]) -> None:
    """Delete the outbox entries of ``job_ids``, in one order whoever deletes them (two
    transactions deleting the same rows in different orders could deadlock)."""
    ordered = sorted(job_ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        tx.write(f"DELETE FROM outbox WHERE job_id IN ({marks})", chunk)


class QuotaExceeded(DataError):
    """Recording a photo would take its client past its quota; nothing was recorded."""

    def __init__(self, stored: int, quota: int) -> None:
        super().__init__(
            f"the client's photos would take {stored} bytes, over its quota of {quota}",
            code="quota_exceeded",
        )
        self.stored = stored
        self.quota = quota


class DuplicatePhoto(DataError):
    """The client already has a photo of these bytes (``photo_id``); nothing was recorded."""

    def __init__(self, photo_id: str) -> None:
        super().__init__(f"the client already has these bytes as {photo_id}", code="duplicate")
        self.photo_id = photo_id


@dataclass(frozen=True)
class Ago:
    """A query parameter: the time ``seconds`` before the database's now (see
    ``Catalog._fetchall_aged``), so repairs go by the clock every host shares."""

    seconds: float


class Snapshot(abc.ABC):
    """A read-only transaction held open across calls: every call sees the catalog as it
    was when the snapshot began, whatever other connections commit meanwhile."""

    @abc.abstractmethod
    async def run(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` (reads only) inside the snapshot, where its connection lives."""


class Catalog(abc.ABC):
    """Photos, their processing state, clients, tokens, sessions and the job outbox."""

    # --- driver primitives -------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self, *, migrate: bool = True) -> None:
        """Open connections and, unless not ``migrate``, bring the schema up to date."""

    @abc.abstractmethod
    def snapshot(self) -> AbstractAsyncContextManager[Snapshot]:
        """A :class:`Snapshot` on a connection of its own, ended on exit (a connected
        catalog's; for copying a whole catalog consistently)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def run_transaction(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work`` whole as one transaction where the connection lives: committed if
        it returns, rolled back if it raises. Being one call, it holds the database's
        write lock only while its statements run, never across turns of the event loop.
        A cancelled caller still waits for it to end, then sees the cancellation."""

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self.run_transaction(lambda tx: tx.fetchall(sql, params))

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one read statement outside any transaction, run as the catalog's own
        queries run theirs (for tools that check or measure the catalog)."""
        return await self._fetchall(sql, params)

    async def _now(self) -> str:
        """The database's clock, as stored times are written."""
        return await self.run_transaction(lambda tx: tx.now())

    async def _fetchall_aged(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Rows of one read whose :class:`Ago` parameters stand for times that long before
        the database's now, as stored times are written (one reading of it for all)."""
        if any(isinstance(p, Ago) for p in params):
            now = await self._now()
            params = [shift_time(now, -p.seconds) if isinstance(p, Ago) else p for p in params]
        return await self._fetchall(sql, params)

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self.run_transaction(lambda tx: tx.execute(sql, params))

    async def _fetch_in(self, sql: str, values: Sequence[str], *params: Any) -> list[Row]:
        """Rows of ``sql`` after ``params``, its ``IN ({marks})`` given ``values`` 500 at a
        time; a value that cannot be a key matches no row (see :func:`_keyable`)."""
        values = [v for v in values if _keyable(v)]
        rows: list[Row] = []
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows += await self._fetchall(sql.format(marks=marks), (*params, *chunk))
        return rows

    async def create_schema(self) -> int:
        """Bring the schema to this release's version (see ``migrations``), once however
        many processes start at once; return the version."""

        def work(tx: Transaction) -> int:
            tx.lock_schema()
            return migrate(tx)

        return await self.run_transaction(work)

    async def ping(self) -> None:
        """Raise unless the catalog answers a query."""
        await self._fetchone("SELECT 1")

    async def now_s(self) -> float:
        """The database's clock in seconds since the epoch: the clock every host's repairs
        go by (a blob store's modification times are compared with it)."""
        return parse_time(await self._now()).timestamp()

    # --- photos ------------------------------------------------------------------------

    async def insert_photo(
        self,
        photo: PhotoRecord,
        outbox: OutboxEntry | None,
        *,
        quota_bytes: int = 0,
        relayed: Collection[str] = (),
    ) -> None:
        """Insert a photo row and (atomically) its outbox entry; raise :class:`DuplicatePhoto`
        instead if the client already has a photo of these bytes. With ``quota_bytes``,
        raise :class:`QuotaExceeded` instead if the client's originals would pass it. The
        row's ``updated_at`` and the entry's ``created_at`` are the database's now,
        whatever the records say. The outbox entries of the jobs ``relayed`` (queued
        since) are forgotten in the same transaction (not if it raises), sparing each
        one a transaction of its own."""

        def work(tx: Transaction) -> None:
            for sql, params in insert_statements(photo, outbox, tx.now()):
                tx.write(sql, params)
            _forget_outbox(tx, relayed)
            # The charge holds the client's row until commit, so a concurrent upload of the
            # same bytes (another request, another api host) waits here and then sees this
            # one: the client's first photo of these bytes is the only one recorded.
            # Both checks in one read (with the writes above, one round trip on PostgreSQL).
            same, stored = tx.fetchall(
                "SELECT (SELECT id FROM photos WHERE client_id = ? AND sha256 = ? AND id <> ? "
                "ORDER BY uploaded_at LIMIT 1), (SELECT stored_bytes FROM clients WHERE id = ?)",
                (photo.client_id, photo.sha256, photo.id, photo.client_id),
            )[0]
            if same is not None:
                raise DuplicatePhoto(str(same))
            # The charge above holds the client's row until commit (PostgreSQL locks it;
            # SQLite has one writer), so concurrent uploads cannot both slip under.
            if quota_bytes and stored is not None and int(stored) > quota_bytes:
                raise QuotaExceeded(int(stored), quota_bytes)

        await self.run_transaction(work)

    async def stored_bytes(self, client_id: str) -> int:
        """The bytes of the client's originals (its photos' ``bytes``)."""
        row = await self._fetchone("SELECT stored_bytes FROM clients WHERE id = ?", (client_id,))
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def get_photo(self, photo_id: str, client_id: str | None = None) -> PhotoRecord | None:
        """One photo; with ``client_id``, only if that client owns it."""
        if not _keyable(photo_id, client_id):
            return None
        if client_id is None:
            row = await self._fetchone(
                f"SELECT {PHOTO_COLUMNS} FROM photos WHERE id = ?", (photo_id,)
            )
        else:
            row = await self._fetchone(
                f"SELECT {PHOTO_COLUMNS} FROM photos WHERE id = ? AND client_id = ?",
                (photo_id, client_id),
            )
        return _photo(row) if row else None

    async def find_by_sha256(self, client_id: str, sha256: str) -> PhotoRecord | None:
        """The client's photo with these bytes, if any."""
        row = await self._fetchone(
            f"SELECT {PHOTO_COLUMNS} FROM photos WHERE client_id = ? AND sha256 = ? "
            "ORDER BY uploaded_at LIMIT 1",
            (client_id, sha256),
        )
        return _photo(row) if row else None

    async def existing_sha256(self, client_id: str, hashes: Sequence[str]) -> dict[str, str]:
        """Map each of ``hashes`` the client already has to its photo id."""
        found: dict[str, str] = {}
        sql = "SELECT sha256, id FROM photos WHERE client_id = ? AND sha256 IN ({marks})"
        for sha, pid in await self._fetch_in(sql, hashes, client_id):
            found.setdefault(sha, pid)
        return found

    async def mark_processing(self, photo_id: str) -> PhotoRecord | None:
        """queued|processing|failed → processing, a completed photo left as it is; the row
        as it was before (None if the photo is gone). One transaction: a job's start needs
        the row anyway, and a separate read before it would cost a round trip more."""

        def work(tx: Transaction) -> Row | None:
            rows = tx.fetchall(
                f"SELECT {PHOTO_COLUMNS} FROM photos WHERE id = ?", (photo_id,), lock=True
            )
            if rows and rows[0][7] != PhotoStatus.COMPLETED:
                tx.write(*_status_statement(photo_id, PhotoStatus.PROCESSING, tx.now()))
            return rows[0] if rows else None

        row = await self.run_transaction(work)
        return _photo(row) if row is not None else None

    async def complete_photo(
        self,
        photo_id: str,
        *,
        metadata: dict[str, Any],
        derivatives: list[DerivativeRecord],
        taken_at: str | None,
        keep_metadata: Collection[str] = (),
        keep_derivatives: Collection[str] = (),
        owed: Collection[str] = (),
    ) -> bool:
        """Record a finished photo; False if it was deleted meanwhile. The stored row's
        ``keep_metadata`` keys and ``keep_derivatives`` survive (a rerun of the ready stages
        keeps the deferred stages' results, which depend on the same original). Of ``owed``
        (the deferred stages), those without a result yet are noted as awaited."""

        def work(tx: Transaction) -> bool:
            rows = tx.fetchall(
                "SELECT processing_metadata, derivatives FROM photos WHERE id = ?",
                (photo_id,),
                lock=True,
            )
            if not rows:
                return False
            meta, derived = metadata, derivatives
            if keep_metadata or keep_derivatives:
                # Read and written in one transaction: nothing lands in between.
                old_meta = orjson.loads(rows[0][0] or "{}")
                meta = {**meta, **{k: old_meta[k] for k in keep_metadata if k in old_meta}}
                names = {d.name for d in derived}
                derived = derived + [
                    d
                    for d in _derivatives_decoder.decode(rows[0][1] or "[]")
                    if d.name in keep_derivatives and d.name not in names
                ]
            tx.write(
                "UPDATE photos SET status = ?, processing_metadata = ?, derivatives = ?, "
                "taken_at = ?, processed_at = ?, processing_error = NULL, error_category = NULL, "
                "error_code = NULL, "
                "updated_at = ?, follow_up = ? WHERE id = ?",
                (
                    PhotoStatus.COMPLETED,
                    orjson.dumps(meta).decode(),
                    msgspec.json.encode(derived).decode(),
                    taken_at,
                    tx.now(),
                    tx.now(),
                    _follow_up(owed, meta),
                    photo_id,
                ),
            )
            return True

        return await self.run_transaction(work)

    async def add_deferred_results(
        self,
        photo_id: str,
        *,
        metadata: dict[str, Any],
        derivatives: list[DerivativeRecord],
        replaces: Collection[str],
    ) -> list[DerivativeRecord] | None:
        """Merge a completed photo's deferred results: ``metadata`` keys overwrite, derivatives
        named in ``replaces`` give way to ``derivatives``. The photo's derivatives after the
        merge; None if the photo is gone or not completed (its results must be dropped)."""

        def work(tx: Transaction) -> list[DerivativeRecord] | None:
            rows = tx.fetchall(
                "SELECT processing_metadata, derivatives, follow_up FROM photos "
                "WHERE id = ? AND status = ?",
                (photo_id, PhotoStatus.COMPLETED),
                lock=True,
            )
            if not rows:
                return None
            merged_meta = {**orjson.loads(rows[0][0] or "{}"), **metadata}
            # A derivative made again keeps its place in the list (clients may show the
            # first), whichever of a photo's jobs ends last.
            fresh = {d.name: d for d in derivatives}
            merged = [
                fresh.pop(d.name, d)
                for d in _derivatives_decoder.decode(rows[0][1] or "[]")
                if d.name in fresh or d.name not in replaces
            ]
            merged += fresh.values()
            owed = orjson.loads(rows[0][2] or "[]")
            tx.write(
                "UPDATE photos SET processing_metadata = ?, derivatives = ?, updated_at = ?, "
                "follow_up = ? WHERE id = ?",
                (
                    orjson.dumps(merged_meta).decode(),
                    msgspec.json.encode(merged).decode(),
                    tx.now(),
                    _follow_up(owed, merged_meta),
                    photo_id,
                ),
            )
            return merged

        return await self.run_transaction(work)

    async def fail_photo(self, photo_id: str, *, error: str, category: str, code: str) -> bool:
        """Record a photo that failed for good; False if it was deleted meanwhile."""
        changed = await self.run_transaction(
            lambda tx: tx.execute(
                "UPDATE photos SET status = ?, processing_error = ?, error_category = ?, "
                "error_code = ?, processed_at = ?, updated_at = ? WHERE id = ?",
                (PhotoStatus.FAILED, error, category, code, tx.now(), tx.now(), photo_id),
            )
        )
        return changed > 0

    async def requeue_photo(self, photo_id: str) -> bool:
        """Back to queued (a failed job was retried), any recorded error cleared; False if
        the photo is gone."""
        changed = await self.run_transaction(
            lambda tx: tx.execute(*_status_statement(photo_id, PhotoStatus.QUEUED, tx.now()))
        )
        return changed > 0

    async def delete_photo(self, photo_id: str, client_id: str) -> PhotoRecord | None:
        """Remove the client's photo row and its outbox entry; return what was removed."""

        def work(tx: Transaction) -> Row | None:
            rows = tx.fetchall(
                f"SELECT {PHOTO_COLUMNS} FROM photos WHERE id = ? AND client_id = ?",
                (photo_id, client_id),
                lock=True,
            )
            if not rows:
                return None
            tx.write("DELETE FROM photos WHERE id = ?", (photo_id,))
            tx.write("DELETE FROM outbox WHERE photo_id = ?", (photo_id,))
            tx.write(*_charge(client_id, -int(rows[0][5])))
            return rows[0]

        row = await self.run_transaction(work)
        return _photo(row) if row is not None else None

    async def photo_ids_present(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` have a photo row."""
        rows = await self._fetch_in("SELECT id FROM photos WHERE id IN ({marks})", ids)
        return {r[0] for r in rows}

    async def photos_in_status(
        self, status: str, *, older_than_s: float, limit: int = 500
    ) -> list[PhotoRecord]:
        """Photos that have sat in ``status`` for ``older_than_s`` by the database's clock."""
        rows = await self._fetchall_aged(
            f"SELECT {PHOTO_COLUMNS} FROM photos WHERE status = ? AND updated_at <= ? "
            "ORDER BY updated_at LIMIT ?",
            (status, Ago(older_than_s), limit),
        )
        return [_photo(r) for r in rows]

    async def failed_within(
        self, *, older_than_s: float, newer_than_s: float, limit: int = 500
    ) -> list[PhotoRecord]:
        """Failed photos unchanged for ``older_than_s`` but changed within ``newer_than_s``
        (by the database's clock), newest first."""
        rows = await self._fetchall_aged(
            f"SELECT {PHOTO_COLUMNS} FROM photos WHERE status = ? AND updated_at <= ? "
            "AND updated_at > ? ORDER BY updated_at DESC LIMIT ?",
            (PhotoStatus.FAILED, Ago(older_than_s), Ago(newer_than_s), limit),
        )
        return [_photo(r) for r in rows]

    async def awaiting_follow_up(
        self, *, older_than_s: float, limit: int = 500
    ) -> list[PhotoRecord]:
        """Completed photos, unchanged for ``older_than_s`` by the database's clock, still
        awaiting a deferred stage's result (its follow-up job never reported)."""
        rows = await self._fetchall_aged(
            f"SELECT {PHOTO_COLUMNS} FROM photos WHERE follow_up IS NOT NULL "
            "AND updated_at <= ? AND status = ? ORDER BY updated_at LIMIT ?",
            (Ago(older_than_s), PhotoStatus.COMPLETED, limit),
        )
        return [_photo(r) for r in rows]

    async def list_photos(
        self,
        client_id: str,
        *,
        limit: int,
        status: str | None = None,
        session_id: str | None = None,
        taken_after: str | None = None,
        taken_before: str | None = None,
        sort: str = "uploaded",
        after: tuple[str, str] | None = None,
        filename_contains: str | None = None,
    ) -> list[PhotoRecord]:
        """The client's photos, newest first, after the keyset cursor ``(sort key, id)``;
        with ``filename_contains``, only those whose name contains it, in any case.

        Under ``sort="taken"`` photos without a date taken follow every dated one, newest
        upload first; their cursor key is :func:`taken_sort_key`'s.
        """
        where = ["client_id = ?"]
        params: list[Any] = [client_id]
        if status:
            where.append("status = ?")
            params.append(status)
        if session_id:
            where.append("session_id = ?")
            params.append(session_id)
        if taken_after:
            where.append("taken_at >= ?")
            params.append(taken_after)
        if taken_before:
            where.append("taken_at < ?")
            params.append(taken_before)
        if filename_contains:
            where.append("filename_key LIKE ? ESCAPE '\\'")
            params.append(_like_pattern(search_key(filename_contains)))
        # Row-value comparisons let the (client_id, <key>, id) index seek straight to the
        # cursor; an OR of comparisons (or COALESCE) makes the engine scan and sort instead.
        if sort != "taken":
            keyset = ["(uploaded_at, id) < (?, ?)"] if after else []
            return await self._photo_page(
                where + keyset, [*params, *(after or ())], "uploaded_at DESC, id DESC", limit
            )
        page: list[PhotoRecord] = []
        # "" is how cursors made before undated photos were ordered by upload named them.
        in_undated = after is not None and (after[0] == "" or after[0].startswith(UNDATED))
        if not in_undated:
            keyset = ["(taken_at, id) < (?, ?)"] if after else []
            page = await self._photo_page(
                [*where, "taken_at IS NOT NULL", *keyset],
                [*params, *(after or ())],
                "taken_at DESC, id DESC",
                limit,
            )
        if len(page) < limit and not (taken_after or taken_before):
            uploaded = after[0].removeprefix(UNDATED) if in_undated and after else ""
            keyset = ["(uploaded_at, id) < (?, ?)"] if uploaded else []
            page += await self._photo_page(
                [*where, "taken_at IS NULL", *keyset],
                [*params, *((uploaded, after[1]) if uploaded and after else ())],
                "uploaded_at DESC, id DESC",
                limit - len(page),
            )
        return page

    async def _photo_page(
        self, where: list[str], params: list[Any], order: str, limit: int
    ) -> list[PhotoRecord]:
        rows = await self._fetchall(
            f"SELECT {PHOTO_COLUMNS} FROM photos WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT ?",
            [*params, limit],
        )
        return [_photo(r) for r in rows]

    # --- outbox ------------------------------------------------------------------------

    async def outbox_pending(self, *, older_than_s: float, limit: int = 100) -> list[OutboxEntry]:
        """Outbox entries ``older_than_s`` by the database's clock, oldest first."""
        rows = await self._fetchall_aged(
            "SELECT job_id, photo_id, payload, priority, created_at, attempts FROM outbox "
            "WHERE created_at <= ? ORDER BY created_at LIMIT ?",
            (Ago(older_than_s), limit),
        )
        return [
            OutboxEntry(
                job_id=r[0], photo_id=r[1], payload=r[2], priority=int(r[3]),
                created_at=r[4], attempts=int(r[5]),
            )
            for r in rows
        ]  # fmt: skip

    async def outbox_done(self, *job_ids: str) -> None:
        """The jobs are on the queue: forget their entries, in one transaction."""
        await self.run_transaction(lambda tx: _forget_outbox(tx, job_ids))

    # --- clients and tokens ------------------------------------------------------------

    async def create_client(self, client_id: str, name: str, *, is_admin: bool) -> ClientRecord:
        """Add a client."""

        def work(tx: Transaction) -> ClientRecord:
            rec = ClientRecord(id=client_id, name=name, is_admin=is_admin, created_at=tx.now())
            tx.execute(
                "INSERT INTO clients (id, name, is_admin, created_at, stored_bytes) "
                "VALUES (?, ?, ?, ?, 0)",
                (rec.id, rec.name, int(rec.is_admin), rec.created_at),
            )
            return rec

        return await self.run_transaction(work)

    async def set_client_admin(self, client_id: str, is_admin: bool) -> None:
        """Grant or take away the admin role (it holds for all of the client's tokens)."""
        await self._execute(
            "UPDATE clients SET is_admin = ? WHERE id = ?", (int(is_admin), client_id)
        )

    async def get_client(self, client_id: str) -> ClientRecord | None:
        row = await self._fetchone(
            "SELECT id, name, is_admin, created_at FROM clients WHERE id = ?", (client_id,)
        )
        return _client(row)

    async def find_client_by_name(self, name: str) -> ClientRecord | None:
        row = await self._fetchone(
            "SELECT id, name, is_admin, created_at FROM clients WHERE name = ? "
            "ORDER BY created_at LIMIT 1",
            (name,),
        )
        return _client(row)

    async def add_token(self, token_hash: str, client_id: str) -> None:
        """Store a token (by its hash only) for a client."""
        await self.run_transaction(
            lambda tx: tx.execute(
                "INSERT INTO tokens (token_hash, client_id, created_at) VALUES (?, ?, ?)",
                (token_hash, client_id, tx.now()),
            )
        )

    async def client_for_token(self, token_hash: str) -> ClientRecord | None:
        """The client a live (unrevoked) token belongs to."""
        row = await self._fetchone(
            "SELECT c.id, c.name, c.is_admin, c.created_at FROM tokens t "
            "JOIN clients c ON c.id = t.client_id "
            "WHERE t.token_hash = ? AND t.revoked_at IS NULL",
            (token_hash,),
        )
        return _client(row)

    async def record_token_use(self, token_hash: str, *, fresh_s: float = 60.0) -> bool:
        """Stamp the token's last use with the database's clock, unless a stamp younger
        than ``fresh_s`` is there (so api processes together write it about once per
        ``fresh_s``); whether it wrote."""

        def work(tx: Transaction) -> int:
            now = tx.now()
            return tx.execute(
                "UPDATE tokens SET last_used_at = ? WHERE token_hash = ? "
                "AND (last_used_at IS NULL OR last_used_at < ?)",
                (now, token_hash, shift_time(now, -fresh_s)),
            )

        return await self.run_transaction(work) > 0

    async def list_tokens(self, *, revoked: bool = False) -> list[TokenRecord]:
        """Every live token (with ``revoked``, revoked ones too), by client name, then
        oldest first."""
        rows = await self._fetchall(
            "SELECT c.id, c.name, c.is_admin, t.created_at, t.last_used_at, t.revoked_at "
            "FROM tokens t JOIN clients c ON c.id = t.client_id"
            + ("" if revoked else " WHERE t.revoked_at IS NULL")
            + " ORDER BY c.name, t.created_at"
        )
        return [
            TokenRecord(
                client_id=r[0], client_name=r[1], is_admin=bool(r[2]), created_at=r[3],
                last_used_at=r[4], revoked_at=r[5],
            )
            for r in rows
        ]  # fmt: skip

    async def revoke_token(self, token_hash: str) -> bool:
        """Revoke one token; False if unknown or already revoked."""
        changed = await self.run_transaction(
            lambda tx: tx.execute(
                "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                (tx.now(), token_hash),
            )
        )
        return changed > 0

    async def revoke_client_tokens(self, client_id: str) -> int:
        """Revoke every token of a client."""
        return await self.run_transaction(
            lambda tx: tx.execute(
                "UPDATE tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
                (tx.now(), client_id),
            )
        )

    # --- service secrets -------------------------------------------------------------

    async def service_secret(self, name: str, candidate: str) -> str:
        """The shared secret ``name``: ``candidate`` if none was stored yet, else the stored
        one. Processes starting at once all get the same one (the first insert wins)."""

        def work(tx: Transaction) -> str:
            tx.execute(
                "INSERT INTO service_secrets (name, value, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, candidate, tx.now()),
            )
            rows = tx.fetchall("SELECT value FROM service_secrets WHERE name = ?", (name,))
            return str(rows[0][0])

        return await self.run_transaction(work)

    # --- upload sessions ---------------------------------------------------------------

    async def create_session(self, session_id: str, client_id: str) -> SessionRecord:
        def work(tx: Transaction) -> SessionRecord:
            rec = SessionRecord(id=session_id, client_id=client_id, created_at=tx.now())
            tx.execute(
                "INSERT INTO upload_sessions (id, client_id, created_at) VALUES (?, ?, ?)",
                (rec.id, rec.client_id, rec.created_at),
            )
            return rec

        return await self.run_transaction(work)

    async def get_session(
        self, session_id: str, client_id: str | None = None
    ) -> SessionRecord | None:
        """One session; with ``client_id``, only if that client created it."""
        if not _keyable(session_id):
            return None
        row = await self._fetchone(
            "SELECT id, client_id, created_at FROM upload_sessions WHERE id = ?", (session_id,)
        )
        if row is None or (client_id is not None and row[1] != client_id):
            return None
        return SessionRecord(id=row[0], client_id=row[1], created_at=row[2])

    async def session_photos(self, session_id: str) -> list[tuple[str, str]]:
        """``(photo_id, status)`` of every photo in a session, oldest first."""
        rows = await self._fetchall(
            "SELECT id, status FROM photos WHERE session_id = ? ORDER BY uploaded_at, id",
            (session_id,),
        )
        return [(r[0], r[1]) for r in rows]

    async def count_by_status(self) -> dict[str, int]:
        """Photos per status, every client's (each status present, 0 if none)."""
        rows = await self._fetchall("SELECT status, COUNT(*) FROM photos GROUP BY status")
        counts = dict.fromkeys(PhotoStatus.ALL, 0)
        counts.update({r[0]: int(r[1]) for r in rows})
        return counts

    async def iter_all_photo_ids(self, batch: int = 1000) -> AsyncIterator[str]:
        """Every photo id (for sweeps)."""
        last = ""
        while True:
            rows = await self._fetchall(
                "SELECT id FROM photos WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            )
            for r in rows:
                yield r[0]
            if len(rows) < batch:
                return
            last = rows[-1][0]
