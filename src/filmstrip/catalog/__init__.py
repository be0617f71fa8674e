"""The catalog: photo rows, processing state, clients, tokens, sessions and the job outbox."""

from __future__ import annotations

from filmstrip.catalog.base import Catalog, QuotaExceeded, utcnow
from filmstrip.catalog.models import (
    ClientRecord,
    DerivativeRecord,
    OutboxEntry,
    PhotoRecord,
    PhotoStatus,
    SessionRecord,
)
from filmstrip.errors import LogicError
from filmstrip.settings import Settings, database_backend, sqlite_path

__all__ = [
    "Catalog",
    "ClientRecord",
    "DerivativeRecord",
    "OutboxEntry",
    "PhotoRecord",
    "PhotoStatus",
    "QuotaExceeded",
    "SessionRecord",
    "catalog_for_url",
    "open_catalog",
    "utcnow",
]


def catalog_for_url(url: str, *, pool_size: int = 4) -> Catalog:
    """The catalog driver for ``url``, chosen by its scheme (not yet connected)."""
    backend = database_backend(url)
    if backend == "sqlite":
        from filmstrip.catalog.sqlite import SqliteCatalog

        return SqliteCatalog(sqlite_path(url))
    if backend == "postgresql":
        from filmstrip.catalog.postgres import PostgresCatalog

        return PostgresCatalog(url, pool_size=pool_size)
    scheme = url.partition(":")[0]
    raise LogicError(f"no catalog driver for {scheme!r} URLs", code="bad_catalog_url")


async def open_catalog(settings: Settings) -> Catalog:
    """The configured catalog, connected and with its schema in place."""
    catalog = catalog_for_url(
        settings.effective_database_url, pool_size=settings.database_pool_size
    )
    await catalog.connect()
    return catalog
