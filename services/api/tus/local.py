"""Partial tus uploads on local disk (the embedded mode): exact, durable offsets and one
writer at a time.

Each upload is a directory ``<tus_dir>/<id>/`` holding ``info.json`` (the committed
state), ``data`` (the bytes received) and ``lock`` (an ``flock`` target that is never
replaced, so api processes sharing the directory exclude each other). So that a client's
open uploads can be counted without reading everyone's, ``<tus_dir>/.clients/<client>/``
holds an empty file named for each upload it created (dropped once that upload is
finished, gone or expired) and a ``lock`` that lets one creation of that client at a time
count them.

Why local files: with a file blob store everything is on one machine (or one shared
volume) anyway, and appending to a file, fsyncing, then committing the offset is exact and
cheap. With an S3 blob store, ``shared.SharedTusStore`` keeps uploads in the shared stores
(S3 parts of at least 5 MiB plus a tail object, state in the catalog) instead.

The offset in ``info.json`` is the truth: it is written (atomically, after the data is
fsynced) only once bytes are durable, and every PATCH first truncates ``data`` back to
it, so a crash mid-write never shows a client bytes that were not committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from filmstrip.concurrency import run_blocking
from filmstrip.errors import ResourceError
from filmstrip.services.api.tus.protocol import CHECKSUM_ALGORITHMS
from filmstrip.services.api.tus.store import (
    Admission,
    ChecksumMismatch,
    ChunkRejected,
    OpenUploads,
    TooMuchData,
    TusStore,
    TusUpload,
    UploadBroken,
    UploadGone,
    UploadLocked,
)

_ID = re.compile(r"^[0-9a-f]{32}$")
_INFO = "info.json"
_DATA = "data"
_LOCK = "lock"
_CLIENTS = ".clients"
_LOCK_POLL_S = 0.05

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TusUpload)


class LocalTusStore(TusStore):
    """Partial uploads under one directory."""

    def __init__(self, root: Path, *, lock_wait_s: float = 5.0) -> None:
        self.root = root
        self.lock_wait_s = lock_wait_s
        # This process's creations queue per client here (fairly) before the flock that
        # orders them across processes; a lock lives while someone waits for it.
        self._creating: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def open(self) -> None:
        """Create the directory."""
        await run_blocking(self.root.mkdir, parents=True, exist_ok=True)

    # --- lifecycle -------------------------------------------------------------------

    async def create(
        self,
        *,
        client_id: str,
        length: int,
        metadata: dict[str, str],
        ttl_s: float,
        admit: Admission | None = None,
    ) -> TusUpload:
        """See :meth:`TusStore.create`; the creations of a client take turns (``_one_creation``)."""
        now = time.time()
        upload = TusUpload(
            id=uuid.uuid4().hex,
            client_id=client_id,
            length=length,
            metadata=metadata,
            created_at=now,
            expires_at=now + ttl_s,
        )
        async with self._one_creation(client_id):
            if admit is not None:
                admit(await run_blocking(self._open_sync, client_id))
            await run_blocking(self._create_sync, upload)
        return upload

    def _create_sync(self, upload: TusUpload) -> None:
        # Counted before it exists: a crash in between leaves a mark the next count drops.
        (self._client_dir(upload.client_id) / upload.id).touch()
        # Built aside and renamed in, so a crash never leaves a half-made upload visible.
        staging = self.root / f".new-{upload.id}"
        staging.mkdir()
        (staging / _DATA).touch()
        (staging / _LOCK).touch()
        _write_atomic(staging / _INFO, _encoder.encode(upload))
        os.rename(staging, self.root / upload.id)
        _fsync_dir(self.root)

    def _client_dir(self, client_id: str) -> Path:
        # Hashed: a client id is ours, but need not be a safe file name.
        return self.root / _CLIENTS / hashlib.sha256(client_id.encode()).hexdigest()[:32]

    @contextlib.asynccontextmanager
    async def _one_creation(self, client_id: str) -> AsyncIterator[None]:
        """Be the only creation of ``client_id`` running, in this process and any other."""
        async with self._creating.setdefault(client_id, asyncio.Lock()):
            fd = await run_blocking(_open_creation_lock, self._client_dir(client_id))
            try:
                deadline = time.monotonic() + self.lock_wait_s
                while not _try_flock(fd):
                    if time.monotonic() > deadline:
                        raise ResourceError(
                            "another api process is creating this client's uploads",
                            code="upload_locked",
                        )
                    await asyncio.sleep(_LOCK_POLL_S)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def _open_sync(self, client_id: str) -> OpenUploads:
        """Count the client's open uploads, dropping the marks of those no longer open."""
        count = total = 0
        now = time.time()
        try:
            entries = list(os.scandir(self._client_dir(client_id)))
        except FileNotFoundError:
            return OpenUploads(count=0, bytes=0)
        for entry in entries:
            if not _ID.match(entry.name):
                continue  # the lock
            upload = self._read_sync(self.root / entry.name)
            if upload is None or upload.finished or upload.expires_at < now:
                _unlink_quietly(Path(entry.path))  # it cannot be open again
                continue
            count += 1
            total += upload.length
        return OpenUploads(count=count, bytes=total)

    async def get(self, upload_id: str) -> TusUpload | None:
        """The upload's committed state, or None (unknown id, or expired)."""
        if not _ID.match(upload_id):
            return None
        upload = await run_blocking(self._read_sync, self.root / upload_id)
        if upload is None or upload.expires_at < time.time():
            return None
        return upload

    def _read_sync(self, folder: Path) -> TusUpload | None:
        try:
            return _decoder.decode((folder / _INFO).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def save(self, upload: TusUpload) -> None:
        """Commit ``upload``'s state (call while holding its lock)."""
        await run_blocking(_write_atomic, self.root / upload.id / _INFO, _encoder.encode(upload))

    async def delete(self, upload_id: str) -> None:
        """Remove the upload and its bytes (absent is fine)."""
        await run_blocking(self._delete_sync, upload_id)

    def _delete_sync(self, upload_id: str) -> None:
        folder = self.root / upload_id
        # Renamed away first so no reader sees a half-deleted upload.
        doomed = self.root / f".del-{upload_id}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(folder, doomed)
        except FileNotFoundError:
            return
        upload = self._read_sync(doomed)
        if upload is not None:
            self._unmark(upload)
        shutil.rmtree(doomed, ignore_errors=True)

    async def drop_data(self, upload: TusUpload) -> None:
        """Free the bytes of an upload that became a photo (its state stays until expiry);
        it no longer counts as open."""
        await run_blocking(_unlink_quietly, self.root / upload.id / _DATA)
        await run_blocking(self._unmark, upload)

    def _unmark(self, upload: TusUpload) -> None:
        _unlink_quietly(self._client_dir(upload.client_id) / upload.id)

    # --- one writer at a time ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: str) -> AsyncIterator[None]:
        """Hold the upload's flock; :class:`UploadLocked` once it stays busy a while (a client
        resuming right after a drop may come before the old request has let go)."""
        try:
            fd = await run_blocking(os.open, self.root / upload_id / _LOCK, os.O_RDWR)
        except FileNotFoundError:
            raise UploadGone(upload_id) from None
        try:
            deadline = time.monotonic() + self.lock_wait_s
            while not _try_flock(fd):
                if time.monotonic() > deadline:
                    raise UploadLocked(upload_id)
                await asyncio.sleep(_LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # --- bytes -------------------------------------------------------------------------

    async def append(
        self,
        upload: TusUpload,
        body: AsyncIterator[bytes],
        *,
        ttl_s: float,
        checksum: tuple[str, bytes] | None = None,
    ) -> tuple[TusUpload, BaseException | None]:
        """See :meth:`TusStore.append`: the bytes are written to ``data`` and fsynced
        before the offset is committed."""
        # Expiry slides: an upload in active use does not expire under its client.
        upload.expires_at = time.time() + ttl_s
        path = self.root / upload.id / _DATA
        start = upload.offset
        handle: BinaryIO = await run_blocking(_open_at, path, start)
        hasher = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        received = 0
        cut: BaseException | None = None
        try:
            try:
                async for chunk in body:
                    if start + received + len(chunk) > upload.length:
                        raise TooMuchData(upload.length)
                    await run_blocking(_write, handle, chunk, hasher)
                    received += len(chunk)
            except ChunkRejected:
                raise
            except Exception as exc:  # the client went away or stalled: keep what arrived
                cut = exc
            if checksum is not None and hasher is not None:
                if cut is not None:
                    received = 0
                elif hasher.digest() != checksum[1]:
                    raise ChecksumMismatch()
            if received:
                await run_blocking(_sync, handle)
        except BaseException:
            received = 0
            raise
        finally:
            await run_blocking(_close_at, handle, start + received)
        if received:
            upload.offset = start + received
            await self.save(upload)
        return upload, cut

    async def read_head(self, upload: TusUpload, size: int) -> bytes:
        """The first ``size`` committed bytes."""
        return await run_blocking(_read_head, self.root / upload.id / _DATA, size)

    async def iter_bytes(
        self, upload: TusUpload, digest: hashlib._Hash, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """The committed bytes in chunks, feeding ``digest`` on the way (off the loop)."""
        try:
            handle = await run_blocking(open, self.root / upload.id / _DATA, "rb")
        except FileNotFoundError:  # the lock file is there: only the bytes were lost
            raise UploadBroken(
                f"upload {upload.id} lost its data", code="upload_truncated"
            ) from None
        try:
            remaining = upload.offset
            while remaining > 0:
                chunk = await run_blocking(_read_hashed, handle, min(chunk_size, remaining), digest)
                if not chunk:
                    raise UploadBroken(f"upload {upload.id} lost bytes", code="upload_truncated")
                remaining -= len(chunk)
                yield chunk
        finally:
            await run_blocking(handle.close)

    # --- expiry ------------------------------------------------------------------------

    async def sweep(self, *, after_s: float = 0.0, stale_s: float = 3600.0) -> int:
        """Delete expired uploads nobody is writing; return how many."""
        return await run_blocking(self._sweep_sync, time.time() + after_s, stale_s)

    def _sweep_sync(self, now: float, stale_s: float) -> int:
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name == _CLIENTS:
                continue
            if entry.name.startswith("."):
                # Staging or half-deleted leftovers of a crash.
                if entry.stat().st_mtime < now - stale_s:
                    shutil.rmtree(entry.path, ignore_errors=True)
                continue
            upload = self._read_sync(Path(entry.path))
            if upload is not None and upload.expires_at >= now:
                continue
            if self._delete_if_idle(entry.name):
                removed += 1
        self._drop_marks_of_gone_uploads()
        return removed

    def _drop_marks_of_gone_uploads(self) -> None:
        # A client that creates no more uploads never counts (and so drops) its old marks.
        try:
            clients = list(os.scandir(self.root / _CLIENTS))
        except FileNotFoundError:
            return
        for client in clients:
            for entry in os.scandir(client.path):
                if _ID.match(entry.name) and not (self.root / entry.name).exists():
                    _unlink_quietly(Path(entry.path))

    def _delete_if_idle(self, upload_id: str) -> bool:
        try:
            fd = os.open(self.root / upload_id / _LOCK, os.O_RDWR)
        except FileNotFoundError:
            self._delete_sync(upload_id)
            return True
        try:
            if not _try_flock(fd):
                return False  # a PATCH is running; it extends the expiry
            self._delete_sync(upload_id)
            return True
        finally:
            os.close(fd)


def _open_creation_lock(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _open_at(path: Path, offset: int) -> BinaryIO:
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed by _close_at
    except FileNotFoundError:  # the lock file is there: only the bytes were lost
        raise UploadBroken(f"{path} is gone", code="upload_truncated") from None
    if os.fstat(handle.fileno()).st_size < offset:
        # Truncating up to the offset would fill the lost bytes with zeros.
        handle.close()
        raise UploadBroken(f"{path} is shorter than its offset", code="upload_truncated")
    # Drop any tail a crashed writer left beyond the committed offset.
    handle.truncate(offset)
    handle.seek(offset)
    return handle


def _write(handle: BinaryIO, chunk: bytes, hasher: hashlib._Hash | None) -> None:
    handle.write(chunk)
    if hasher is not None:
        hasher.update(chunk)


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _close_at(handle: BinaryIO, offset: int) -> None:
    try:
        handle.flush()
        handle.truncate(offset)
    finally:
        handle.close()


def _read_head(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def _read_hashed(handle: BinaryIO, size: int, digest: hashlib._Hash) -> bytes:
    chunk = handle.read(size)
    digest.update(chunk)
    return chunk


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
