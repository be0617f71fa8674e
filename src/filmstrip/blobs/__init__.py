"""Blob stores, picked by URL scheme (``file://`` or ``s3://``) with lazy imports."""

from __future__ import annotations

from filmstrip.blobs.base import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreFull,
    BlobStoreUnavailable,
    BlobTooLarge,
    ContentEtag,
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
    "ContentEtag",
    "blob_store_for_url",
    "open_blob_store",
]


async def open_blob_store(settings: Settings) -> BlobStore:
    """The store that ``settings.effective_blob_url`` names, ready to use."""
    from filmstrip.blobs.fs import FileBlobStore

    store = await blob_store_for_url(settings.effective_blob_url, settings)
    if isinstance(store, FileBlobStore):
        # Temp files a crashed writer left behind would otherwise stay forever.
        await store.sweep_temp()
    return store


async def blob_store_for_url(url: str, settings: Settings) -> BlobStore:
    """The store ``url`` names (``file:///path`` or ``s3://bucket[/prefix]``, S3 with the
    ``s3_*`` settings), opened without changing anything in it."""
    if url.startswith("file://"):
        from filmstrip.blobs.fs import FileBlobStore

        return FileBlobStore.from_url(url)
    if url.startswith("s3://"):
        from filmstrip.blobs.s3 import S3BlobStore

        return await S3BlobStore.from_settings(url, settings)
    raise LogicError(f"unsupported blob URL {url!r}", code="bad_blob_url")
