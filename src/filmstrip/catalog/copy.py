"""Copying a whole catalog into another (SQLite into PostgreSQL, when moving up from
``filmstrip dev``), verified by row counts and a checksum per table.

The tables, their columns, keys and foreign keys are read from the databases themselves,
never listed here, so tables a later migration adds are copied too. Both sides are brought
to this release's schema first (``migrations``); the copy then reads the source in one
:class:`~filmstrip.catalog.base.Snapshot` and writes the target a batch per transaction.
A row whose key the target already holds is skipped when equal and reported as a conflict
when not (replaced only when asked), so running the copy again after a cut, or after the
source gained rows, finishes the job and changes nothing else.

A table's checksum is the sum, modulo 2**256, of the SHA-256 of each of its rows (the
values in column-name order, each read back as the same Python type from either
database), so it does not depend on the order each database returns rows in. The
target's is computed by reading it back after the copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import msgspec

from filmstrip.catalog.base import Catalog, Row, Snapshot, Transaction
from filmstrip.catalog.migrations import LATEST, VERSION_TABLE, schema_version
from filmstrip.errors import LogicError

Key = tuple[Any, ...]
Progress = Callable[[str, int, int], None]

BATCH_ROWS = 500
# Bound parameters per statement: under SQLite's old default limit of 999.
MAX_PARAMS = 900
# Keys kept for the report, per table and kind (conflicts, rows only the target has).
EXAMPLES = 20
_MODULUS = 2**256


@dataclass(frozen=True)
class TableShape:
    """A table as the database describes it."""

    name: str
    columns: tuple[str, ...]  # sorted by name: the order rows are read and hashed in
    key: tuple[str, ...]  # the primary key, in its own order
    references: frozenset[str]

    @property
    def key_positions(self) -> tuple[int, ...]:
        return tuple(self.columns.index(k) for k in self.key)

    def key_of(self, row: Row) -> Key:
        return tuple(_normal(row[i]) for i in self.key_positions)


@dataclass
class Checksum:
    """A multiset hash of rows: order-free, and rows can be taken out again."""

    rows: int = 0
    total: int = 0

    def add(self, digest: int) -> None:
        self.rows += 1
        self.total = (self.total + digest) % _MODULUS

    def remove(self, digest: int) -> None:
        self.rows -= 1
        self.total = (self.total - digest) % _MODULUS

    def merge(self, other: Checksum) -> None:
        self.rows += other.rows
        self.total = (self.total + other.total) % _MODULUS

    @property
    def hex(self) -> str:
        return f"{self.total:064x}"


@dataclass
class Found:
    """How many rows of one kind, with a few of their keys for the report."""

    count: int = 0
    examples: list[tuple[Key, list[str]]] = field(default_factory=list)  # and columns

    def note(self, key: Key, columns: list[str] | None = None) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append((key, columns or []))


@dataclass
class Side:
    """One database as found before the copy."""

    version: int
    rows: dict[str, int]  # by table


@dataclass
class Plan:
    """What the copy will do: found before writing anything."""

    source: Side
    target: Side
    tables: list[TableShape]  # the source's, in an order that satisfies foreign keys
    extra: dict[str, Found]  # rows the target holds and the source lacks, by table
    extra_sums: dict[str, Checksum]
    refusals: list[str]

    @property
    def comparable(self) -> bool:
        """Both sides already at this release's schema: rows can be compared now."""
        return self.source.version == LATEST and self.target.version == LATEST


@dataclass
class TableResult:
    """What the copy did to one table, and what verifying it found."""

    table: str
    source: Checksum = field(default_factory=Checksum)
    copied: int = 0  # inserted (or, in a dry run, to insert)
    present: int = 0  # already there and equal
    conflicts: Found = field(default_factory=Found)  # there with other values
    replaced: int = 0  # conflicts overwritten with the source's values
    raced: int = 0  # inserted by someone else between our read and our insert
    extra: int = 0
    expected: Checksum = field(default_factory=Checksum)  # what the target should hold
    target: Checksum | None = None  # what it holds, read back

    @property
    def verified(self) -> bool:
        return self.target is not None and self.target == self.expected


def _normal(value: Any) -> Any:
    """A value as the same Python type whichever database it came from."""
    if value is None or isinstance(value, str | float):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else f"int:{value}"
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Decimal):
        return _normal(int(value)) if value == value.to_integral_value() else float(value)
    return f"{type(value).__name__}:{value}"


def row_digest(row: Row) -> int:
    """The SHA-256 of a row's normalised values, as an integer."""
    encoded = msgspec.msgpack.encode([_normal(v) for v in row])
    return int.from_bytes(hashlib.sha256(encoded).digest(), "big")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select(shape: TableShape) -> str:
    return f"SELECT {', '.join(map(_q, shape.columns))} FROM {_q(shape.name)}"


def _key_match(shape: TableShape, count: int) -> str:
    """A WHERE condition matching ``count`` keys, whose values follow in order."""
    if len(shape.key) == 1:
        return f"{_q(shape.key[0])} IN ({', '.join('?' * count)})"
    one = "(" + " AND ".join(f"{_q(k)} = ?" for k in shape.key) + ")"
    return " OR ".join([one] * count)


def _shapes(tx: Transaction) -> dict[str, TableShape]:
    return {
        name: TableShape(
            name=name,
            columns=tuple(sorted(tx.columns(name))),
            key=tuple(tx.primary_key(name)),
            references=frozenset(tx.references(name) - {name}),
        )
        for name in tx.tables() - {VERSION_TABLE}
    }


def _fetch(tx: Transaction, sql: str, params: Sequence[Any]) -> list[Row]:
    return tx.fetchall(sql, params)


def _counts(tx: Transaction, tables: Sequence[str]) -> dict[str, int]:
    return {t: int(tx.fetchall(f"SELECT COUNT(*) FROM {_q(t)}")[0][0]) for t in tables}


def _ordered(shapes: dict[str, TableShape]) -> list[TableShape]:
    """Tables in an order where each comes after the tables its foreign keys point at."""
    done: list[TableShape] = []
    pending = dict(sorted(shapes.items()))
    while pending:
        waiting_for = pending.keys()
        ready = [s for s in pending.values() if not s.references & waiting_for]
        if not ready:
            raise LogicError(
                f"the foreign keys of tables {sorted(pending)} form a cycle: no order copies them",
                code="catalog_copy_cycle",
            )
        for shape in ready:
            done.append(shape)
            del pending[shape.name]
    return done


async def _scan(snap: Snapshot, shape: TableShape, batch_rows: int) -> AsyncIterator[list[Row]]:
    """The table's rows in key order, a batch at a time, by keyset (each batch an index
    seek past the last key seen)."""
    order = ", ".join(map(_q, shape.key))
    after: Key | None = None
    while True:
        where = f" WHERE ({order}) > ({', '.join('?' * len(shape.key))})" if after else ""
        sql = f"{_select(shape)}{where} ORDER BY {order} LIMIT ?"
        params = (*(after or ()), batch_rows)
        rows = await snap.run(partial(_fetch, sql=sql, params=params))
        if rows:
            yield rows
        if len(rows) < batch_rows:
            return
        after = tuple(rows[-1][i] for i in shape.key_positions)


def _rows_by_key(
    tx: Transaction, shape: TableShape, keys: Sequence[Key], *, lock: bool = False
) -> dict[Key, Row]:
    """The rows of ``table`` with these keys, by normalised key."""
    found: dict[Key, Row] = {}
    per = max(1, MAX_PARAMS // len(shape.key))
    for start in range(0, len(keys), per):
        chunk = keys[start : start + per]
        sql = f"{_select(shape)} WHERE {_key_match(shape, len(chunk))}"
        params = [v for key in chunk for v in key]
        for row in tx.fetchall(sql, params, lock=lock):
            found[shape.key_of(row)] = row
    return found


def _insert(tx: Transaction, shape: TableShape, rows: Sequence[Row]) -> int:
    """Insert ``rows``, leaving alone any whose key arrived meanwhile; how many went in."""
    inserted = 0
    per = max(1, MAX_PARAMS // len(shape.columns))
    one = "(" + ", ".join("?" * len(shape.columns)) + ")"
    cols = ", ".join(map(_q, shape.columns))
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        inserted += tx.execute(
            f"INSERT INTO {_q(shape.name)} ({cols}) VALUES {', '.join([one] * len(chunk))} "
            "ON CONFLICT DO NOTHING",
            [v for row in chunk for v in row],
        )
    return inserted


def _replace(tx: Transaction, shape: TableShape, row: Row) -> None:
    others = [c for c in shape.columns if c not in shape.key]
    if not others:
        return  # the key is the whole row: equal keys, equal rows
    sets = ", ".join(f"{_q(c)} = ?" for c in others)
    where = " AND ".join(f"{_q(k)} = ?" for k in shape.key)
    values = [row[shape.columns.index(c)] for c in others]
    keys = [row[i] for i in shape.key_positions]
    tx.execute(f"UPDATE {_q(shape.name)} SET {sets} WHERE {where}", [*values, *keys])


async def inspect(
    source: Catalog, target: Catalog, *, batch_rows: int = BATCH_ROWS, allow_extra: bool = False
) -> Plan:
    """Read both catalogs (connected, not necessarily migrated) and plan the copy; writes
    nothing. Refuses a side whose schema is newer than this release, schemas that differ
    once both are current, a table without a primary key, and (unless ``allow_extra``)
    a target holding rows the source lacks."""
    refusals: list[str] = []
    async with source.snapshot() as src, target.snapshot() as dst:
        src_version = await src.run(schema_version)
        dst_version = await dst.run(schema_version)
        src_shapes = await src.run(_shapes)
        dst_shapes = await dst.run(_shapes)
        source_side = Side(src_version, await src.run(lambda tx: _counts(tx, sorted(src_shapes))))
        target_side = Side(dst_version, await dst.run(lambda tx: _counts(tx, sorted(dst_shapes))))
        for name, version in (("source", src_version), ("target", dst_version)):
            if version > LATEST:
                refusals.append(
                    f"the {name} catalog's schema is version {version}, newer than this "
                    f"release knows ({LATEST}): run the copy with a release at least as new"
                )
        for shape in src_shapes.values():
            if not shape.key:
                refusals.append(
                    f"table {shape.name} has no primary key: its rows cannot be matched"
                )
        if src_version == dst_version == LATEST and not refusals:
            refusals += _schema_differences(src_shapes, dst_shapes)
        extra: dict[str, Found] = {}
        extra_sums: dict[str, Checksum] = {}
        if not refusals:
            for shape in src_shapes.values():
                theirs = dst_shapes.get(shape.name)
                if theirs is None or theirs.key != shape.key or not target_side.rows[shape.name]:
                    continue
                found, sums = await _extra_rows(src, dst, shape, theirs, batch_rows)
                if found.count:
                    extra[shape.name], extra_sums[shape.name] = found, sums
        if extra and not allow_extra:
            total = sum(f.count for f in extra.values())
            where = ", ".join(f"{t} {f.count}" for t, f in sorted(extra.items()))
            refusals.append(
                f"the target holds {total} rows the source lacks ({where}): it is not a copy "
                "of this catalog, or roles already wrote to it (--allow-extra keeps them)"
            )
    return Plan(
        source=source_side,
        target=target_side,
        tables=_ordered(src_shapes) if not refusals else [],
        extra=extra,
        extra_sums=extra_sums,
        refusals=refusals,
    )


def _schema_differences(source: dict[str, TableShape], target: dict[str, TableShape]) -> list[str]:
    found = []
    for name in sorted(source.keys() | target.keys()):
        a, b = source.get(name), target.get(name)
        if a is None or b is None:
            found.append(f"table {name} is only in the {'target' if a is None else 'source'}")
        elif (a.columns, a.key) != (b.columns, b.key):
            found.append(
                f"table {name} differs: source columns {list(a.columns)} key {list(a.key)}, "
                f"target columns {list(b.columns)} key {list(b.key)}"
            )
    return found


async def _extra_rows(
    src: Snapshot, dst: Snapshot, shape: TableShape, theirs: TableShape, batch_rows: int
) -> tuple[Found, Checksum]:
    """Rows of the target's table whose keys the source lacks, and their checksum."""
    found, sums = Found(), Checksum()
    comparable = theirs.columns == shape.columns
    async for batch in _scan(dst, theirs, batch_rows):
        keys = [theirs.key_of(r) for r in batch]
        have = await src.run(partial(_rows_by_key, shape=shape, keys=keys))
        for row, key in zip(batch, keys, strict=True):
            if key not in have:
                found.note(key)
                if comparable:
                    sums.add(row_digest(row))
    return found, sums


async def copy(
    plan: Plan,
    source: Catalog,
    target: Catalog,
    *,
    write: bool = True,
    overwrite: bool = False,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> list[TableResult]:
    """Copy every table of ``plan`` from one snapshot of ``source`` into ``target`` (both
    at this release's schema), a batch per target transaction. Without ``write``, only
    count what it would do. ``overwrite`` replaces conflicting rows with the source's."""
    results = []
    async with source.snapshot() as src:
        for shape in plan.tables:
            result = TableResult(shape.name)
            total = (await src.run(partial(_counts, tables=[shape.name])))[shape.name]
            async for batch in _scan(src, shape, batch_rows):
                await _copy_batch(target, shape, batch, result, write=write, overwrite=overwrite)
                if progress is not None:
                    progress(shape.name, result.source.rows, total)
            if shape.name in plan.extra_sums:
                result.extra = plan.extra[shape.name].count
                result.expected.merge(plan.extra_sums[shape.name])
            results.append(result)
    return results


async def _copy_batch(
    target: Catalog,
    shape: TableShape,
    batch: list[Row],
    result: TableResult,
    *,
    write: bool,
    overwrite: bool,
) -> None:
    keyed = [(shape.key_of(row), row, row_digest(row)) for row in batch]

    def work(tx: Transaction) -> tuple[list[tuple[int, list[str]] | None], int]:
        """Each row's digest in the target (None: absent) and the columns where it differs,
        and how many rows went in. Pure: a transaction that conflicts runs again whole."""
        # Locked (PostgreSQL's FOR UPDATE) so what is compared is what stays until commit.
        have = _rows_by_key(tx, shape, [k for k, _, _ in keyed], lock=write)
        theirs: list[tuple[int, list[str]] | None] = []
        missing: list[Row] = []
        for key, row, digest in keyed:
            if key not in have:
                theirs.append(None)
                missing.append(row)
                continue
            their_digest = row_digest(have[key])
            theirs.append((their_digest, _differing(shape, row, have[key])))
            if write and overwrite and their_digest != digest:
                _replace(tx, shape, row)
        inserted = _insert(tx, shape, missing) if write and missing else len(missing)
        return theirs, inserted

    if write:
        theirs, inserted = await target.run_transaction(work)
    else:
        async with target.snapshot() as dst:
            theirs, inserted = await dst.run(work)
    for (key, _, digest), their in zip(keyed, theirs, strict=True):
        result.source.add(digest)
        if their is None or their[0] == digest:
            result.present += their is not None
            result.expected.add(digest)
            continue
        result.conflicts.note(key, their[1])
        if overwrite and write:
            result.replaced += 1
            result.expected.add(digest)
        else:
            result.expected.add(their[0])
    missing = sum(1 for t in theirs if t is None)
    result.copied += inserted
    result.raced += missing - inserted


def _differing(shape: TableShape, ours: Row, theirs: Row) -> list[str]:
    return [
        c for c, a, b in zip(shape.columns, ours, theirs, strict=True) if _normal(a) != _normal(b)
    ]


async def verify(
    target: Catalog, plan: Plan, results: list[TableResult], *, batch_rows: int = BATCH_ROWS
) -> None:
    """Read the target back in one snapshot: each result's ``target`` checksum."""
    shapes = {s.name: s for s in plan.tables}
    async with target.snapshot() as dst:
        for result in results:
            result.target = await _checksum(dst, shapes[result.table], batch_rows)


async def source_changes(
    source: Catalog, plan: Plan, results: list[TableResult], *, batch_rows: int = BATCH_ROWS
) -> list[str]:
    """Tables of the source that changed since the copy's snapshot (roles still writing)."""
    shapes = {s.name: s for s in plan.tables}
    changed = []
    async with source.snapshot() as src:
        for result in results:
            if await _checksum(src, shapes[result.table], batch_rows) != result.source:
                changed.append(result.table)
    return changed


async def _checksum(snap: Snapshot, shape: TableShape, batch_rows: int) -> Checksum:
    sums = Checksum()
    async for batch in _scan(snap, shape, batch_rows):
        for row in batch:
            sums.add(row_digest(row))
    return sums
