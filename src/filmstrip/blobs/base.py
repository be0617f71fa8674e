"""The blob store interface: originals and derivatives by key, streamed in and out."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

import msgspec

from filmstrip.errors import Category, DataError, TemporaryError

CHUNK_SIZE = 256 * 1024


class BlobInfo(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    size: int
    etag: str
    content_type: str
    modified: float  # seconds since the epoch
    # Hex SHA-256 of the bytes, from the writes that hashed them (``put_stream`` always).
    sha256: str | None = None


class BlobNotFound(DataError):
    """No blob at that key (DATA: retrying a job whose original is gone will not help)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no blob at {key!r}", code="blob_not_found")
        self.key = key


class BlobTooLarge(DataError):
    """A streamed upload passed ``max_bytes``; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"upload is larger than the limit of {limit} bytes", code="too_large")
        self.limit = limit


class BlobStoreUnavailable(TemporaryError):
    """The store could not be reached or answered with a server error."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="blob_store_unavailable")


class BlobStoreFull(BlobStoreUnavailable):
    """The store is out of space or quota: defer the work, don't spend an attempt on it."""

    category = Category.RESOURCE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = "blob_store_full"


class ContentEtag(Protocol):
    """Fed a blob's bytes in order, gives the ETag a store gives those bytes."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class BlobStore(abc.ABC):
    """Keys are ``/``-separated relative paths (rules in :mod:`filmstrip.blobs.validation`;
    a bad key is a ``LogicError``). Writes are atomic: a reader sees the whole blob or none,
    and a failed, cancelled or oversized write leaves nothing behind.

    ETags are strong validators but backend-specific: SHA-256 hex for files, S3's ETag
    (MD5, or ``<md5>-<parts>`` for multipart) for S3. Compare them only within one store.
    """

    #: A name for the container (bucket, or the root directory), recorded in jobs.
    bucket: str

    @abc.abstractmethod
    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        """Store the chunks under ``key``; raise :class:`BlobTooLarge` past ``max_bytes``."""

    @abc.abstractmethod
    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str, durable: bool = True
    ) -> BlobInfo:
        """Store ``data`` under ``key`` (replacing any blob there). ``durable=False`` lets a
        store skip what only guards against a power cut (a file store's fsyncs): for data
        that can be made again, such as derivatives. A process crash never loses it."""

    @abc.abstractmethod
    async def get_bytes(self, key: str) -> bytes:
        """The whole blob; :class:`BlobNotFound` if absent."""

    @abc.abstractmethod
    async def open_stream(
        self, key: str, *, chunk_size: int = CHUNK_SIZE, start: int = 0
    ) -> tuple[BlobInfo, AsyncIterator[bytes]]:
        """The blob's info (of all of it) and an iterator over its bytes from ``start`` on
        (none when it is past the end); :class:`BlobNotFound` if absent."""

    @abc.abstractmethod
    async def stat(self, key: str) -> BlobInfo | None:
        """The blob's info, or ``None``."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; absent is fine."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``."""

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every blob under ``prefix``; return how many."""
        keys = [info.key async for info in self.list(prefix)]
        for key in keys:
            await self.delete(key)
        return len(keys)

    def content_etag(self) -> ContentEtag | None:
        """A hasher whose digest is the ETag this store gives the bytes it is fed when it
        stores them (so a copy can be checked without reading it back); None where the
        ETag is no such function of the content."""
        return None

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`BlobStoreUnavailable` unless the store answers."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
