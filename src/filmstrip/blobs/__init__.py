"""Blob stores, picked by URL scheme (``file://`` or ``s3://``) with lazy imports."""

from __future__ import annotations

from filmstrip.blobs.base import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    BlobTooLarge,
)
from filmstrip.settings import Settings

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreUnavailable",
    "BlobTooLarge",
    "open_blob_store",
]


async def open_blob_store(settings: Settings) -> BlobStore:
    """The store that ``settings.effective_blob_url`` names, ready to use."""
    url = settings.effective_blob_url
    if url.startswith("file://"):
        from filmstrip.blobs.fs import FileBlobStore

        return FileBlobStore.from_url(url)
    if url.startswith("s3://"):
        from filmstrip.blobs.s3 import S3BlobStore

        return await S3BlobStore.from_settings(url, settings)
    raise ValueError(f"unsupported blob URL {url!r}")
