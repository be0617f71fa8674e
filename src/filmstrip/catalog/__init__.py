"""The catalog: photo rows, processing state, clients, tokens, sessions and the job outbox."""

from __future__ import annotations

import asyncio
import os

from filmstrip.catalog.base import Catalog, DuplicatePhoto, QuotaExceeded, utcnow
from filmstrip.catalog.models import (
    ClientRecord,
    DerivativeRecord,
    OutboxEntry,
    PhotoRecord,
    PhotoStatus,
    SessionRecord,
    TokenRecord,
)
from filmstrip.errors import LogicError
from filmstrip.settings import Settings, database_backend, sqlite_path

__all__ = [
    "Catalog",
    "CatalogMissing",
    "ClientRecord",
    "DerivativeRecord",
    "DuplicatePhoto",
    "OutboxEntry",
    "PhotoRecord",
    "PhotoStatus",
    "QuotaExceeded",
    "SessionRecord",
    "TokenRecord",
    "catalog_for_url",
    "open_catalog",
    "utcnow",
]


def catalog_for_url(url: str, *, pool_size: int = 4, wait: bool = True) -> Catalog:
    """The catalog driver for ``url``, chosen by its scheme (not yet connected); ``wait``
    False: a server catalog that cannot be reached fails its connect at once."""
    backend = database_backend(url)
    if backend == "sqlite":
        from filmstrip.catalog.sqlite import SqliteCatalog

        return SqliteCatalog(sqlite_path(url))
    if backend == "postgresql":
        from filmstrip.catalog.postgres import PostgresCatalog

        return PostgresCatalog(url, pool_size=pool_size, wait=wait)
    scheme = url.partition(":")[0]
    raise LogicError(f"no catalog driver for {scheme!r} URLs", code="bad_catalog_url")


class CatalogMissing(LogicError):
    """``open_catalog(create=False)`` found no catalog at the URL (no SQLite file, or a
    database without the catalog's tables)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"there is no catalog at {url}", code="catalog_missing")
        self.url = url


async def open_catalog(settings: Settings, *, create: bool = True, wait: bool = True) -> Catalog:
    """The configured catalog, connected and with its schema in place. With ``create``
    False, a catalog that does not exist yet is not made: :class:`CatalogMissing`.
    ``wait`` as :func:`catalog_for_url` takes it."""
    url = settings.effective_database_url
    catalog = catalog_for_url(url, pool_size=settings.catalog.database_pool_size, wait=wait)
    if create:
        await catalog.connect()
        return catalog
    # Connecting makes an SQLite file: look for it first.
    if database_backend(url) == "sqlite" and not await asyncio.to_thread(
        os.path.isfile, sqlite_path(url)
    ):
        raise CatalogMissing(url)
    await catalog.connect(migrate=False)
    try:
        if "clients" not in await catalog.run_transaction(lambda tx: tx.tables()):
            raise CatalogMissing(url)
        await catalog.create_schema()
    except BaseException:
        await catalog.close()
        raise
    return catalog
