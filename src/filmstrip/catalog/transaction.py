"""What a catalog transaction offers the code run inside it (queries, migrations)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

Row = Sequence[Any]


class Transaction(abc.ABC):
    """Statements run inside one transaction, on the thread that owns the connection."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement whose row count nobody reads: a driver may send it with the
        transaction's next statement or its commit (an error then surfaces there)."""
        self.execute(sql, params)

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = (), *, lock: bool = False) -> list[Row]:
        """Rows of one query; with ``lock``, the rows stay locked against other writers
        until the transaction ends (``FOR UPDATE``), for a read that decides a write."""

    @abc.abstractmethod
    def now(self) -> str:
        """The database's clock, as stored times are written; one value per transaction."""

    @abc.abstractmethod
    def columns(self, table: str) -> set[str]:
        """The names of ``table``'s columns (empty if there is no such table)."""

    @abc.abstractmethod
    def tables(self) -> set[str]:
        """The names of the catalog's tables (the database's own excluded)."""

    @abc.abstractmethod
    def primary_key(self, table: str) -> list[str]:
        """``table``'s primary key columns, in the key's order (empty if it has none)."""

    @abc.abstractmethod
    def references(self, table: str) -> set[str]:
        """The tables ``table``'s foreign keys point at."""

    @abc.abstractmethod
    def lock_schema(self) -> None:
        """Wait until no other process is migrating the schema (until this transaction
        ends). A no-op where write transactions already run one at a time."""
