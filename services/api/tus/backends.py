"""The one place that picks where partial tus uploads live, by the blob store's kind."""

from __future__ import annotations

from filmstrip.blobs import BlobStore
from filmstrip.catalog import Catalog
from filmstrip.errors import LogicError
from filmstrip.services.api.tus.store import TusStore
from filmstrip.settings import Settings


def open_tus_store(settings: Settings, catalog: Catalog, blobs: BlobStore) -> TusStore:
    """With files (one machine: the embedded mode), a local directory; with S3, the
    catalog and the bucket, which every api process on every host shares."""
    if not settings.effective_blob_url.startswith("s3://"):
        from filmstrip.services.api.tus.local import LocalTusStore

        return LocalTusStore(settings.effective_tus_dir)
    # Imported only here: the embedded mode never loads the S3 client.
    from filmstrip.blobs.s3 import S3BlobStore
    from filmstrip.services.api.tus.shared import SharedTusStore

    if not isinstance(blobs, S3BlobStore):
        raise LogicError("an s3:// blob URL opened another store", code="bad_blob_url")
    return SharedTusStore(catalog, blobs)
