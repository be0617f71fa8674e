"""The catalog: photo rows, processing state, clients, tokens, sessions and the job outbox."""

from __future__ import annotations

from filmstrip.catalog.base import Catalog, QuotaExceeded, utc_ago, utcnow
from filmstrip.catalog.models import (
    ClientRecord,
    DerivativeRecord,
    OutboxEntry,
    PhotoRecord,
    PhotoStatus,
    SessionRecord,
)
from filmstrip.settings import Settings

__all__ = [
    "Catalog",
    "ClientRecord",
    "DerivativeRecord",
    "OutboxEntry",
    "PhotoRecord",
    "PhotoStatus",
    "QuotaExceeded",
    "SessionRecord",
    "open_catalog",
    "utc_ago",
    "utcnow",
]


async def open_catalog(settings: Settings) -> Catalog:
    """The configured catalog, connected and with its schema in place."""
    from filmstrip.catalog.sqlite import SqliteCatalog

    catalog = SqliteCatalog(settings.effective_db_path)
    await catalog.connect()
    return catalog
