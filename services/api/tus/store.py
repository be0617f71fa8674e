"""Partial tus uploads: the committed state of an upload, and what a store of them does.

Two stores implement it, chosen in one place (``backends.open_tus_store``) by the blob
store's kind: with files (the embedded mode, one machine) each upload is a local directory
(``local.LocalTusStore``); with S3 its state is a catalog row and its bytes are in the
bucket (``shared.SharedTusStore``), so a PATCH may reach any api process on any host.

Either way the committed offset is the truth: bytes past it are never shown, and a cut
PATCH keeps what arrived (unless it carried a checksum, which cannot be verified then).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable

import msgspec

from filmstrip.errors import FilmstripError, ResourceError


class TusUpload(msgspec.Struct, kw_only=True):
    """The committed state of one upload."""

    id: str
    client_id: str
    length: int
    offset: int = 0
    metadata: dict[str, str] = {}
    created_at: float
    expires_at: float
    #: Set from the first bytes once they arrive (a non-photo is refused then).
    content_type: str | None = None
    #: Set once the finished upload is recorded as a photo.
    photo_id: str | None = None
    duplicate: bool = False

    @property
    def complete(self) -> bool:
        return self.offset == self.length

    @property
    def finished(self) -> bool:
        return self.photo_id is not None


class OpenUploads(msgspec.Struct, frozen=True, kw_only=True):
    """A client's uploads that are neither finished (a photo) nor expired."""

    count: int
    bytes: int


class UploadLocked(ResourceError):
    """Another request is writing this upload (tus clients retry)."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload {upload_id} is busy with another request", code="upload_locked")


class UploadGone(FilmstripError):
    """The upload was deleted (terminated, swept) while a request was about to use it."""

    def __init__(self, upload_id: str) -> None:
        super().__init__(f"upload {upload_id} is gone", code="upload_not_found")


class UploadBroken(FilmstripError):
    """What the store holds of the upload no longer matches its committed state (bytes
    lost from the bucket or the disk): it cannot go on, and is dropped for the client to
    start again (retrying would meet the same loss)."""


class ChunkRejected(FilmstripError):
    """A chunk was discarded: its checksum did not match, or it ran past the length."""


class TooMuchData(ChunkRejected):
    def __init__(self, length: int) -> None:
        super().__init__(
            f"the body runs past Upload-Length ({length} bytes)", code="exceeds_length"
        )


class ChecksumMismatch(ChunkRejected):
    def __init__(self) -> None:
        super().__init__(
            "the chunk does not match its Upload-Checksum; it was discarded",
            code="checksum_mismatch",
        )


Admission = Callable[[OpenUploads], None]


class TusStore(abc.ABC):
    """Partial uploads: made, locked one writer at a time, appended to, read back whole
    once complete, and swept once expired."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (directories)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop what the store runs."""

    @abc.abstractmethod
    async def create(
        self,
        *,
        client_id: str,
        length: int,
        metadata: dict[str, str],
        ttl_s: float,
        admit: Admission | None = None,
    ) -> TusUpload:
        """A new, empty upload of ``length`` bytes owned by ``client_id``. ``admit`` is
        shown the client's open uploads while no other creation of that client runs (in
        any api process), and raises to refuse this one."""

    @abc.abstractmethod
    async def get(self, upload_id: str) -> TusUpload | None:
        """The upload's committed state, or None (unknown id, or expired)."""

    @abc.abstractmethod
    async def save(self, upload: TusUpload) -> None:
        """Commit what the routes set: ``content_type``, ``photo_id``, ``duplicate`` (call
        while holding the lock)."""

    @abc.abstractmethod
    async def delete(self, upload_id: str) -> None:
        """Remove the upload and its bytes (absent is fine)."""

    @abc.abstractmethod
    async def drop_data(self, upload: TusUpload) -> None:
        """Free the bytes of an upload that became a photo (its state stays until expiry,
        and it no longer counts as open)."""

    @abc.abstractmethod
    def locked(self, upload_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the upload for writing: :class:`UploadLocked` if another request keeps it
        for a while, :class:`UploadGone` if there is no such upload."""

    @abc.abstractmethod
    async def append(
        self,
        upload: TusUpload,
        body: AsyncIterator[bytes],
        *,
        ttl_s: float,
        checksum: tuple[str, bytes] | None = None,
    ) -> tuple[TusUpload, BaseException | None]:
        """Append ``body`` at ``upload.offset`` (hold the lock), sliding the expiry to
        ``ttl_s`` from now; the new state and the error that cut the body short, if any.

        A cut body keeps what arrived unless it carried a checksum. A checksum mismatch
        or bytes past the length discard the whole chunk and raise :class:`ChunkRejected`.
        """

    @abc.abstractmethod
    async def read_head(self, upload: TusUpload, size: int) -> bytes:
        """The first ``size`` committed bytes (``size`` at most 64)."""

    @abc.abstractmethod
    def iter_bytes(
        self, upload: TusUpload, digest: hashlib._Hash, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """The bytes of a complete upload in chunks, feeding ``digest`` on the way."""

    @abc.abstractmethod
    async def sweep(self, *, after_s: float = 0.0, stale_s: float = 3600.0) -> int:
        """Delete uploads expired (as if ``after_s`` seconds had passed) that nobody is
        writing, and leftovers of crashes older than ``stale_s``; return how many uploads."""
