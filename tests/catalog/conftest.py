"""One catalog suite for every backend: the ``backend`` fixture runs each test on SQLite
and on PostgreSQL (a database of its own on the test server, dropped after)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from filmstrip.catalog import Catalog, PhotoRecord, PhotoStatus, catalog_for_url
from filmstrip.settings import sqlite_url
from tests.support import postgres


@dataclass(frozen=True)
class Backend:
    name: str
    url: str

    def catalog(self, **options: int) -> Catalog:
        """Another catalog (not yet connected) on the same database."""
        return catalog_for_url(self.url, **options)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", sqlite_url(str(tmp_path / "catalog.db")))
        return
    reason = postgres.unreachable()
    if reason:
        pytest.skip(f"PostgreSQL half of the catalog suite skipped: {reason}")
    url = postgres.create_database()
    yield Backend("postgresql", url)
    postgres.drop_database(url)


@pytest.fixture
async def catalog(backend: Backend) -> AsyncIterator[Catalog]:
    cat = backend.catalog()
    await cat.connect()
    yield cat
    await cat.close()


def make_photo(
    client: str = "c1", uploaded: str = "2026-01-01T00:00:00.000Z", **kw: object
) -> PhotoRecord:
    pid = str(uuid.uuid4())
    base: dict[str, object] = dict(
        id=pid, client_id=client, session_id=None, blob_key=f"originals/{pid}",
        content_type="image/jpeg", bytes=10, sha256=uuid.uuid4().hex * 2,
        status=PhotoStatus.QUEUED, job_id=f"photo:{pid}", trace_id="t" * 32,
        uploaded_at=uploaded,
    )  # fmt: skip
    base.update(kw)
    return PhotoRecord(**base)  # type: ignore[arg-type]
