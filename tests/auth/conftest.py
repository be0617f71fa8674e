"""The signing key lives in the catalog: these tests run on every catalog backend."""

from tests.catalog.conftest import backend, catalog

__all__ = ["backend", "catalog"]
