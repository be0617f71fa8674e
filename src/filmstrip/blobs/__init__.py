"""Blob stores, picked by URL scheme (``file://`` or ``s3://``) with lazy imports."""

from __future__ import annotations

from filmstrip.blobs.base import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreFull,
    BlobStoreUnavailable,
    BlobTooLarge,
)
from filmstrip.errors import LogicError
from filmstrip.settings import Settings

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreFull",
    "BlobStoreUnavailable",
    "BlobTooLarge",
    "open_blob_store",
]


async def open_blob_store(settings: Settings) -> BlobStore:
    """The store that ``settings.effective_blob_url`` names, ready to use."""
    url = settings.effective_blob_url
    if url.startswith("file://"):
        from filmstrip.blobs.fs import FileBlobStore

        store = FileBlobStore.from_url(url)
        # Temp files a crashed writer left behind would otherwise stay forever.
        await store.sweep_temp()
        return store
    if url.startswith("s3://"):
        from filmstrip.blobs.s3 import S3BlobStore

        return await S3BlobStore.from_settings(url, settings)
    raise LogicError(f"unsupported blob URL {url!r}", code="bad_blob_url")
