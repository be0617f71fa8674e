"""The PostgreSQL catalog driver (psycopg 3, a sync connection pool), for roles that run on
several hosts.

Each transaction runs whole on one of the driver's threads, on one pooled connection:
``BEGIN``, the work's statements, ``COMMIT``, with the event loop free meanwhile (measured
in ``bench/catalog_writers.py`` against asyncpg and psycopg's async pool), in as few round
trips as its reads allow (see ``_PgTransaction``). There are as many threads as
connections, so a thread never waits for one while the server is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from filmstrip.catalog.base import Ago, Catalog, Row, Snapshot, Transaction, settle
from filmstrip.errors import TemporaryError

T = TypeVar("T")

log = logging.getLogger("filmstrip.catalog.postgres")


def _stored_time(moment: str) -> str:
    """SQL for the timestamptz ``moment`` written as the catalog stores times."""
    return f"to_char(({moment}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


# The database's clock, written as the catalog stores times.
_NOW_SQL = f"SELECT {_stored_time('now()')}"
# A parameter's seconds before it: computed in the query that uses it, not a read before.
_AGO_SQL = _stored_time("now() - make_interval(secs => ?::float8)")
# One advisory lock key for schema migrations ("filmstrp" as a big-endian int64).
_SCHEMA_LOCK = int.from_bytes(b"filmstrp", "big")
# Connection defaults a URL may override: give up on an unreachable server after 5 s, and
# notice a dead peer (a host gone, a cut link) within ~25 s instead of the kernel's 2 h.
_CONNECT_DEFAULTS = {
    "connect_timeout": "5",
    "application_name": "filmstrip",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
# How long a role's start waits for a server that is down (perhaps still starting).
_START_WAIT_S = 10.0
# A command run by hand makes one attempt instead, given up after this long (libpq's least).
_COMMAND_CONNECT_TIMEOUT = "2"
# How long a call waits for a connection before answering catalog_unavailable; with the
# server up, only while the pool grows.
_CHECKOUT_TIMEOUT_S = 3.0
# The pool retries a failed connection with growing delays (1, 2, 4 s ...); giving up
# after this long lets the next call start afresh, so a server that comes back is used
# within seconds rather than after a delay that doubled through the whole outage.
_RECONNECT_TIMEOUT_S = 5.0
# Serialization failures and deadlocks: the transaction is rolled back whole and run again.
_ATTEMPTS = 5
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_IDLE = TransactionStatus.IDLE


@functools.lru_cache(maxsize=1024)
def _dialect(sql: str) -> str:
    """Portable ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _unavailable(exc: BaseException) -> TemporaryError:
    # libpq's errors run over several lines ("... failed: Connection refused\n\tIs the
    # server running ..."): one line, for a log line or a command's message alike.
    why = " ".join(str(exc).split())
    return TemporaryError(f"catalog unavailable: {why}", code="catalog_unavailable")


class _PgTransaction(Transaction):
    """Statements on one connection, bound on the client so that several ride in one round
    trip: a transaction's ``BEGIN`` and its clock go with its first statement, and writes
    nobody counts go with the next statement or the ``COMMIT``. A read-then-write
    transaction is then two round trips instead of five: half its client CPU (~145 µs
    against ~300 here), since the thread waits and wakes twice, not five times."""

    def __init__(self, conn: psycopg.Connection[Any], *, begin: bool) -> None:
        self._cursor = psycopg.ClientCursor(conn)
        self._now: str | None = None
        # Sent with the first round trip; then the held writes, with the next one.
        self._opening: list[str] = ["BEGIN", _NOW_SQL] if begin else []
        self._held: list[str] = []
        # True once the first round trip went through, or a COMMIT was sent: from then
        # on a lost connection may have left work done, so it is not run again.
        self.began = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._run(self._bound(sql, params))
        return self._cursor.rowcount

    def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._held.append(self._bound(sql, params))

    def fetchall(self, sql: str, params: Sequence[Any] = (), *, lock: bool = False) -> list[Row]:
        self._run(self._bound(sql + " FOR UPDATE" if lock else sql, params))
        return list(self._cursor.fetchall())

    def commit(self) -> None:
        """End the transaction with the writes still held (none began if nothing was sent)."""
        if self._opening and not self._held:
            return
        self.began = True
        self._run("COMMIT")

    def _bound(self, sql: str, params: Sequence[Any]) -> str:
        return self._cursor.mogrify(_dialect(sql), tuple(params))

    def _run(self, *statements: str) -> None:
        """``statements`` after what waits to be sent, in one round trip; the cursor is left
        on the last result. An error in any of them is raised here."""
        statements = (*self._opening, *self._held, *statements)
        # Bound already, so sent as written, by the simple-query protocol (several at once).
        self._cursor.execute("; ".join(statements))
        self.began = True
        if self._opening:
            self._opening = []
            self._cursor.nextset()  # past BEGIN's result, to the clock's
            row = self._cursor.fetchone()
            self._now = str(row[0]) if row is not None else None
        self._held = []
        while self._cursor.nextset():
            pass

    def now(self) -> str:
        if self._now is None and self._opening:
            self._run()  # BEGIN and the clock: nothing else is ready to go with them
        if self._now is None:
            self._now = str(self.fetchall(_NOW_SQL)[0][0])
        return self._now

    def columns(self, table: str) -> set[str]:
        rows = self.fetchall(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {str(r[0]) for r in rows}

    def tables(self) -> set[str]:
        rows = self.fetchall(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
        return {str(r[0]) for r in rows}

    def primary_key(self, table: str) -> list[str]:
        rows = self.fetchall(
            "SELECT k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            "AND k.table_schema = c.table_schema AND k.table_name = c.table_name "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema() "
            "AND c.table_name = ? ORDER BY k.ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]

    def references(self, table: str) -> set[str]:
        rows = self.fetchall(
            "SELECT DISTINCT target.relname FROM pg_constraint f "
            "JOIN pg_class source ON source.oid = f.conrelid "
            "JOIN pg_class target ON target.oid = f.confrelid "
            "WHERE f.contype = 'f' AND source.relnamespace = current_schema()::regnamespace "
            "AND source.relname = ?",
            (table,),
        )
        return {str(r[0]) for r in rows}

    def lock_schema(self) -> None:
        # Held until the transaction ends; a process that dies lets go with its connection.
        self.fetchall("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))


class PostgresCatalog(Catalog):
    """A pool of ``pool_size`` connections and as many threads. Plain reads run in
    autocommit, one round trip each; transactions lock what they read before writing it.
    ``wait``: :meth:`connect` waits out a server that is down, as a role starting does;
    without it, one attempt (a command run by hand), failing with that attempt's error."""

    def __init__(self, url: str, *, pool_size: int = 4, wait: bool = True) -> None:
        defaults = _CONNECT_DEFAULTS
        if not wait:
            defaults = {**defaults, "connect_timeout": _COMMAND_CONNECT_TIMEOUT}
        params = {**defaults, **conninfo_to_dict(url)}
        self.url = url
        self.pool_size = pool_size
        self.wait = wait
        self._conninfo = make_conninfo("", **params)
        self._pool = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            open=False,
            timeout=_CHECKOUT_TIMEOUT_S,
            reconnect_timeout=_RECONNECT_TIMEOUT_S,
            name="filmstrip-catalog",
        )
        self._executor: ThreadPoolExecutor | None = None

    async def connect(self, *, migrate: bool = True) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self.pool_size, thread_name_prefix="filmstrip-catalog"
        )
        # Start every thread now: starting one waits for it to run, which on a busy
        # machine would otherwise stall the event loop at the first call.
        barrier = threading.Barrier(self.pool_size + 1)
        for _ in range(self.pool_size):
            self._executor.submit(barrier.wait)
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        try:
            if self.wait:
                await self._on_thread(lambda: self._pool.open(wait=True, timeout=_START_WAIT_S))
            else:
                await self._on_thread(self._open_after_one_attempt)
        except psycopg.OperationalError as exc:
            await self.close()
            raise _unavailable(exc) from exc
        if not migrate:
            return
        try:
            await self.create_schema()
        except BaseException:
            await self.close()
            raise

    def _open_after_one_attempt(self) -> None:
        # The pool would retry a refused connection until its timeout, then report only
        # that it timed out; one connection of our own fails at once, saying why.
        psycopg.connect(self._conninfo).close()
        self._pool.open(wait=False)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._pool.close)
            executor.shutdown(wait=False)

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise TemporaryError("catalog is not connected", code="catalog_unavailable")
        return await settle(asyncio.get_running_loop().run_in_executor(self._executor, fn))

    async def run_transaction(self, work: Callable[[Transaction], T]) -> T:
        return await self._on_thread(lambda: self._transact(work))

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._on_thread(lambda: self._read(sql, params))

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        conn = await self._on_thread(self._begin_snapshot)
        try:
            yield _PgSnapshot(self, conn)
        finally:
            await self._on_thread(lambda: self._end_snapshot(conn))

    def _begin_snapshot(self) -> psycopg.Connection[Any]:
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            raise _unavailable(exc) from exc
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # REPEATABLE READ takes its snapshot at the first statement: take it now.
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            self._pool.putconn(conn)
            raise _unavailable(exc) from exc
        return conn

    def _end_snapshot(self, conn: psycopg.Connection[Any]) -> None:
        # A broken connection fails here; the pool checks it on return and drops it.
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
        self._pool.putconn(conn)

    async def _now(self) -> str:
        return str((await self._fetchall(_NOW_SQL))[0][0])

    async def _fetchall_aged(self, sql: str, params: Sequence[Any]) -> list[Row]:
        # Each Ago's "?" becomes the database's own arithmetic: one round trip, not two.
        parts = sql.split("?")
        text, values = [parts[0]], []
        for param, rest in zip(params, parts[1:], strict=True):
            if isinstance(param, Ago):
                text.append(_AGO_SQL)
                values.append(param.seconds)
            else:
                text.append("?")
                values.append(param)
            text.append(rest)
        return await self._fetchall("".join(text), values)

    def _transact(self, work: Callable[[Transaction], T]) -> T:
        """``work`` in one transaction, run again after a serialization failure or deadlock,
        and on another connection if the pool's was dead before anything was sent."""
        attempt = 0
        while True:
            attempt += 1
            tx: _PgTransaction | None = None
            try:
                with self._pool.connection() as conn:
                    tx = _PgTransaction(conn, begin=True)
                    try:
                        result = work(tx)
                        tx.commit()
                    except BaseException:
                        if not conn.broken and conn.info.transaction_status != _IDLE:
                            with contextlib.suppress(psycopg.Error):
                                conn.execute("ROLLBACK")
                        raise
                    return result
            except PoolTimeout as exc:
                raise _unavailable(exc) from exc
            except _RETRYABLE as exc:
                if attempt >= _ATTEMPTS:
                    raise TemporaryError(
                        f"catalog transaction kept conflicting: {exc}", code="catalog_conflict"
                    ) from exc
                log.info("catalog transaction conflicted (%s); running it again", exc)
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
            except psycopg.OperationalError as exc:
                # A connection that died idle (a server restart) fails at the first round
                # trip; the pool drops it, and another is tried. Past it the outcome is not
                # ours to guess.
                if (tx is not None and tx.began) or attempt > self.pool_size:
                    raise _unavailable(exc) from exc

    def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One statement in autocommit; a read, so it may be sent again on another
        connection when the first was dead."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._pool.connection() as conn, conn.cursor() as cursor:
                    cursor.execute(_dialect(sql), tuple(params))
                    return list(cursor.fetchall())
            except PoolTimeout as exc:
                raise _unavailable(exc) from exc
            except psycopg.OperationalError as exc:
                if attempt > self.pool_size:
                    raise _unavailable(exc) from exc


class _PgSnapshot(Snapshot):
    """A REPEATABLE READ, READ ONLY transaction on one connection taken from the pool."""

    def __init__(self, catalog: PostgresCatalog, conn: psycopg.Connection[Any]) -> None:
        self._catalog = catalog
        self._conn = conn

    async def run(self, work: Callable[[Transaction], T]) -> T:
        def call() -> T:
            try:
                return work(_PgTransaction(self._conn, begin=False))
            except psycopg.OperationalError as exc:
                raise _unavailable(exc) from exc

        return await self._catalog._on_thread(call)
