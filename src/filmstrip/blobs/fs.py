"""Blobs as plain files under one root directory, written atomically.

Layout under the root::

    <key>                  the blob's bytes, exactly as uploaded
    .meta/<key>.json       content type, SHA-256 and the identity of the file it describes
    .tmp/<uuid>            writes in progress (same filesystem, so ``os.replace`` is atomic)

The ETag is the hex SHA-256 of the content (a strong validator), computed while the bytes
stream in. The sidecar names the inode, size and mtime of the file it was written for: a
reader that catches an overwrite between the sidecar's and the blob's rename sees a
mismatch and falls back to a type guessed from the key and a size+mtime ETag, so the info
it returns always describes the bytes it reads.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import hashlib
import mimetypes
import os
import stat as stat_mod
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

import msgspec

from filmstrip.blobs.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreFull,
    BlobStoreUnavailable,
    BlobTooLarge,
    ContentEtag,
)
from filmstrip.blobs.validation import check_key, check_prefix
from filmstrip.errors import LogicError

P = ParamSpec("P")
T = TypeVar("T")

TMP_DIR = ".tmp"
META_DIR = ".meta"
META_SUFFIX = ".json"
# Hop to the I/O thread once per MiB, not once per (often small) network chunk.
WRITE_BUFFER = 1024 * 1024
LIST_BATCH = 256
LOCK_STRIPES = 64
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_FULL = (errno.ENOSPC, errno.EDQUOT)


class _Meta(msgspec.Struct, frozen=True):
    content_type: str
    sha256: str
    size: int
    ino: int
    mtime_ns: int


_meta_decoder = msgspec.json.Decoder(_Meta)


def _os_error(exc: OSError, what: str) -> BlobStoreUnavailable:
    if exc.errno in _FULL:
        return BlobStoreFull(f"blob store is full while {what}: {exc}")
    return BlobStoreUnavailable(f"blob store failed while {what}: {exc}")


def guess_content_type(key: str) -> str:
    """The type the key's extension suggests, for blobs whose sidecar is missing."""
    return mimetypes.guess_type(key, strict=False)[0] or DEFAULT_CONTENT_TYPE


class FileBlobStore(BlobStore):
    """A :class:`BlobStore` on a local (or mounted) directory; all file I/O runs in a
    small private thread pool so blob traffic never waits behind image work."""

    def __init__(self, root: str | os.PathLike[str], *, io_threads: int = 4) -> None:
        path = Path(root)
        if not path.is_absolute():
            raise LogicError(f"blob root {str(path)!r} must be absolute", code="bad_blob_url")
        self.root = path
        self.bucket = str(path)
        self._tmp = path / TMP_DIR
        self._meta = path / META_DIR
        self._pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="filmstrip-fs")
        # Striped per-key locks keep a sidecar and its blob renamed as a pair among this
        # process's writers; across processes the sidecar's inode check still catches it.
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]

    @classmethod
    def from_url(cls, url: str) -> FileBlobStore:
        """The store for a ``file:///abs/path`` URL."""
        return cls(root_of_url(url))

    # --- plumbing -----------------------------------------------------------------------

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _lock(self, key: str) -> threading.Lock:
        return self._stripes[hash(key) % LOCK_STRIPES]

    def _meta_path(self, key: str) -> Path:
        return self._meta / (key + META_SUFFIX)

    def _info(self, key: str, st: os.stat_result) -> BlobInfo:
        """Info for the file whose stat is ``st``, trusting the sidecar only if it matches."""
        meta: _Meta | None = None
        try:
            meta = _meta_decoder.decode(self._meta_path(key).read_bytes())
        except (OSError, msgspec.DecodeError):
            meta = None
        if meta and (meta.ino, meta.size, meta.mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns):
            return BlobInfo(
                key=key,
                size=st.st_size,
                etag=meta.sha256,
                content_type=meta.content_type,
                modified=st.st_mtime,
                sha256=meta.sha256,
            )
        return BlobInfo(
            key=key,
            size=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            content_type=guess_content_type(key),
            modified=st.st_mtime,
        )

    # --- writes -------------------------------------------------------------------------

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        """Stream ``chunks`` to a temp file and rename it into place; nothing is left on error.

        Each MiB is written (and hashed) in the I/O pool while the next one is received.
        """
        dest = self._path(key)
        writer = _TempWriter(self._tmp)
        pending: list[bytes] = []
        buffered = 0
        total = 0
        # A concurrent future, not an asyncio one: cleanup must be able to wait for a
        # write already running in its thread, even after a cancellation.
        inflight: Future[None] | None = None
        try:
            async for chunk in chunks:
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise BlobTooLarge(max_bytes)
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_BUFFER:
                    data = b"".join(pending)
                    pending.clear()
                    buffered = 0
                    if inflight is not None:
                        await _wait(inflight, f"writing {key!r}")
                    inflight = self._pool.submit(writer.write, data)
            if inflight is not None:
                await _wait(inflight, f"writing {key!r}")
            return await self._run(self._commit, writer, b"".join(pending), key, dest, content_type)
        except BaseException:
            # Shielded so a second cancellation cannot leave the temp file behind.
            await asyncio.shield(self._discard(writer, inflight))
            raise

    async def _discard(self, writer: _TempWriter, inflight: Future[None] | None) -> None:
        if inflight is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wrap_future(inflight)
        await self._run(writer.discard)

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str, durable: bool = True
    ) -> BlobInfo:
        """Store ``data`` atomically in one hop to the I/O pool; fsynced (the file, then its
        directory) unless not ``durable``."""
        dest = self._path(key)
        writer = _TempWriter(self._tmp)
        try:
            return await self._run(
                self._commit, writer, data, key, dest, content_type, sync=durable
            )
        except BaseException:
            await asyncio.shield(self._run(writer.discard))
            raise

    def _commit(
        self,
        writer: _TempWriter,
        tail: bytes,
        key: str,
        dest: Path,
        content_type: str,
        *,
        sync: bool = True,
    ) -> BlobInfo:
        try:
            writer.write(tail)
            st, digest = writer.finish(sync=sync)
            meta = _Meta(content_type, digest, st.st_size, st.st_ino, st.st_mtime_ns)
            # The sidecar goes first: a reader that sees the new blob always finds its
            # sidecar, and one that sees the old blob with the new sidecar detects it.
            # Not fsynced: a sidecar lost in a crash only costs the fallback info.
            meta_tmp = _TempWriter(self._tmp)
            try:
                meta_tmp.write(msgspec.json.encode(meta))
                meta_tmp.finish(sync=False)
            except BaseException:
                meta_tmp.discard()
                raise
            with self._lock(key):
                try:
                    _replace(meta_tmp.path, self._meta_path(key), sync_dir=False)
                except BaseException:
                    meta_tmp.discard()
                    raise
                try:
                    _replace(writer.path, dest, sync_dir=sync)
                except (NotADirectoryError, IsADirectoryError, FileExistsError):
                    self._meta_path(key).unlink(missing_ok=True)
                    _prune(self._meta_path(key).parent, self._meta)
                    raise
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            # S3 allows both "a" and "a/b"; a filesystem cannot. Retrying will not help.
            raise LogicError(
                f"blob key {key!r} collides with an existing blob or directory",
                code="blob_key_conflict",
            ) from exc
        except OSError as exc:
            raise _os_error(exc, f"writing {key!r}") from exc
        return BlobInfo(
            key=key,
            size=st.st_size,
            etag=digest,
            content_type=content_type,
            modified=st.st_mtime,
            sha256=digest,
        )

    async def delete(self, key: str) -> None:
        """Remove the blob and its sidecar, then any directories that became empty."""
        path = self._path(key)
        await self._run(self._delete, key, path)

    def _delete(self, key: str, path: Path) -> None:
        try:
            with self._lock(key):
                path.unlink(missing_ok=True)
                self._meta_path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _os_error(exc, f"deleting {key!r}") from exc
        _prune(path.parent, self.root)
        _prune(self._meta_path(key).parent, self._meta)

    # --- reads --------------------------------------------------------------------------

    async def get_bytes(self, key: str) -> bytes:
        """The whole blob; :class:`BlobNotFound` if absent."""
        path = self._path(key)
        return await self._run(self._read_all, key, path)

    def _read_all(self, key: str, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise _os_error(exc, f"reading {key!r}") from exc

    async def open_stream(
        self, key: str, *, chunk_size: int = CHUNK_SIZE, start: int = 0
    ) -> tuple[BlobInfo, AsyncIterator[bytes]]:
        """The blob's info and its bytes from ``start``; both describe the same file even
        mid-overwrite."""
        path = self._path(key)
        info, fh = await self._run(self._open, key, path, start)
        return info, _FileChunks(fh, chunk_size, self._pool)

    def _open(self, key: str, path: Path, start: int = 0) -> tuple[BlobInfo, BinaryIO]:
        try:
            fh = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise _os_error(exc, f"opening {key!r}") from exc
        try:
            info = self._info(key, os.fstat(fh.fileno()))
            if start:
                fh.seek(start)  # past the end, reads give nothing
            return info, fh
        except BaseException:
            fh.close()
            raise

    async def stat(self, key: str) -> BlobInfo | None:
        """The blob's info, or ``None``."""
        path = self._path(key)
        return await self._run(self._stat, key, path)

    def _stat(self, key: str, path: Path) -> BlobInfo | None:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _os_error(exc, f"stating {key!r}") from exc
        if not _is_file(st):
            return None
        return self._info(key, st)

    async def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, in key order; skips temp files."""
        check_prefix(prefix)
        keys = await self._run(self._keys, prefix)
        for start in range(0, len(keys), LIST_BATCH):
            batch = await self._run(self._infos, keys[start : start + LIST_BATCH])
            for info in batch:
                yield info

    def _keys(self, prefix: str) -> builtins.list[str]:
        # Walk only the directory the prefix pins down, not the whole tree.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root / base if base else self.root
        found: builtins.list[str] = []
        for dirpath, dirnames, filenames in os.walk(top, onerror=_raise):
            # Dot-directories hold temp files and sidecars, never blobs.
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                if name.startswith("."):
                    continue
                key = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
                if key.startswith(prefix):
                    found.append(key)
        found.sort()
        return found

    def _infos(self, keys: builtins.list[str]) -> builtins.list[BlobInfo]:
        infos = []
        for key in keys:
            try:
                st = (self.root / key).stat()
            except FileNotFoundError:
                continue  # deleted since the walk
            infos.append(self._info(key, st))
        return infos

    def content_etag(self) -> ContentEtag:
        """The SHA-256 of the content, as the sidecar records it."""
        return hashlib.sha256()

    async def ping(self) -> None:
        """Raise :class:`BlobStoreUnavailable` unless a file can be written under the root."""
        await self._run(self._ping)

    def _ping(self) -> None:
        probe = _TempWriter(self._tmp)
        try:
            probe.write(b"ping")
            probe.finish()
        except OSError as exc:
            raise _os_error(exc, f"writing to {self.root}") from exc
        finally:
            probe.discard()

    async def sweep_temp(self, *, older_than_s: float = 3600.0) -> int:
        """Delete temp files a crashed writer left behind; return how many."""
        return await self._run(self._sweep, older_than_s)

    def _sweep(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    async def close(self) -> None:
        """Stop the I/O threads (running calls finish first)."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


def root_of_url(url: str) -> Path:
    """The directory a ``file:///abs/path`` blob URL names."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise LogicError(f"blob URL {url!r} is not file:///abs/path", code="bad_blob_url")
    return Path(unquote(parts.path))


class _TempWriter:
    """A temp file opened on the first write, hashed as it grows; runs in an I/O thread."""

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.path = tmp_dir / uuid.uuid4().hex
        self._fh: BinaryIO | None = None
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        if self._fh is None:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("xb")
        self._fh.write(data)
        self._hash.update(data)

    def finish(self, *, sync: bool = True) -> tuple[os.stat_result, str]:
        """Flush (to disk if ``sync``) and close; the stat and hex digest of what was written."""
        if self._fh is None:
            self.write(b"")
        assert self._fh is not None
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())
        st = os.fstat(self._fh.fileno())
        self._fh.close()
        return st, self._hash.hexdigest()

    def discard(self) -> None:
        if self._fh is None:
            return  # never created
        self._fh.close()
        self.path.unlink(missing_ok=True)


class _FileChunks:
    """An async iterator over an open file that closes it at the end or on ``aclose``."""

    def __init__(self, fh: BinaryIO, chunk_size: int, pool: ThreadPoolExecutor) -> None:
        self._fh = fh
        self._size = chunk_size
        self._pool = pool

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._fh.closed:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(self._pool, self._fh.read, self._size)
        except OSError as exc:
            self._fh.close()
            raise _os_error(exc, "reading") from exc
        if not data:
            self._fh.close()
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        self._fh.close()

    def __del__(self) -> None:
        # A caller that drops the iterator unread must not leak the descriptor.
        self._fh.close()


def _replace(src: Path, dest: Path, *, sync_dir: bool = True) -> None:
    """``os.replace`` into ``dest``, creating parents (again, if a delete pruned them)."""
    for _ in range(5):
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dest)
        except FileNotFoundError:
            if not src.exists():
                raise
            continue
        if sync_dir:
            _fsync_dir(dest.parent)
        return
    raise BlobStoreUnavailable(f"could not create the directory for {dest}")


async def _wait(future: Future[None], what: str) -> None:
    try:
        await asyncio.wrap_future(future)
    except OSError as exc:
        raise _os_error(exc, what) from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(directory: Path, stop: Path) -> None:
    """Remove ``directory`` and its parents while they are empty, up to ``stop``."""
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty, or already gone
        directory = directory.parent


def _is_file(st: os.stat_result) -> bool:
    return stat_mod.S_ISREG(st.st_mode)


def _raise(exc: OSError) -> None:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return  # the prefix names a directory that does not exist (or a blob): none below
    raise _os_error(exc, "listing")
