"""A bounded cache of blobs on local disk, shared by the worker processes of one host.

A photo's follow-up job needs the original its upload job fetched minutes earlier. With a
remote store that is a second download: for a small photo, a third of the follow-up's
overhead; for a 25 MB original, 25 MB more transfer. The upload job leaves the bytes
here and the follow-up takes them, on whichever worker of the host claims it.

It is only ever a shortcut: every failure (full disk, a file another process evicted, a
corrupt entry) reads as a miss, and the caller goes to the store. Entries are removed
when taken, when older than ``max_age_s`` (a deleted photo's bytes do not linger), and
oldest first when the directory outgrows ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
import uuid
from pathlib import Path

from filmstrip.settings import Settings

log = logging.getLogger("filmstrip.blobs.local_cache")

# Each process checks the directory's size after writing this fraction of the bound (or
# every SCAN_EVERY_S), so the directory exceeds it by at most that much per process.
SCAN_FRACTION = 8
SCAN_EVERY_S = 30.0
EVICT_TO = 0.8  # an eviction empties down to this fraction of the bound


class LocalBlobCache:
    """Blobs by key in one directory; files are named by a hash of the key."""

    def __init__(self, directory: Path, *, max_bytes: int, max_age_s: float) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._written = 0
        self._scanned_at = 0.0

    @classmethod
    def for_originals(cls, settings: Settings) -> LocalBlobCache | None:
        """The worker's cache of originals; None when it is off or the store is local
        (the store is then a local read already)."""
        if not settings.worker.original_cache_mb or settings.effective_blob_url.startswith("file:"):
            return None
        return cls(
            settings.effective_original_cache_dir,
            max_bytes=settings.worker.original_cache_mb * 1024 * 1024,
            max_age_s=settings.worker.original_cache_max_age_s,
        )

    def _path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    async def put(self, key: str, data: bytes) -> None:
        """Keep ``data`` for ``key``; a blob over a quarter of the bound is not kept."""
        if len(data) > self.max_bytes // 4:
            return
        try:
            await asyncio.to_thread(self._write, self._path(key), data)
        except OSError as exc:
            log.warning("local cache write failed: %s", exc)
            return
        self._written += len(data)
        due = time.monotonic() - self._scanned_at > SCAN_EVERY_S
        if due or self._written > self.max_bytes // SCAN_FRACTION:
            self._written = 0
            self._scanned_at = time.monotonic()
            try:
                await asyncio.to_thread(self.evict)
            except OSError as exc:
                log.warning("local cache eviction failed: %s", exc)

    async def take(self, key: str) -> bytes | None:
        """The blob kept for ``key``, removed from the cache; None if there is none."""
        try:
            return await asyncio.to_thread(self._take, self._path(key))
        except OSError:
            return None

    async def discard(self, key: str) -> None:
        """Forget ``key`` (absent is fine)."""
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    def evict(self) -> int:
        """Remove expired entries, then the oldest until under the bound; how many went."""
        now = time.time()
        entries: list[tuple[float, int, Path]] = []
        removed = 0
        with os.scandir(self.directory) as listing:
            for entry in listing:
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # taken or evicted by another process meanwhile
                path = Path(entry.path)
                # Writes in progress of other processes are ".tmp-" files: old ones are debris.
                if now - st.st_mtime > self.max_age_s:
                    removed += _unlink(path)
                else:
                    entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        if total > self.max_bytes:
            entries.sort()
            for _, size, path in entries:
                if total <= self.max_bytes * EVICT_TO:
                    break
                removed += _unlink(path)
                total -= size
        return removed

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Renamed into place: a reader never sees half a file, even from another process.
        tmp = self.directory / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _take(self, path: Path) -> bytes | None:
        # Renamed first, so two processes cannot both take it.
        claimed = path.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            return None
        try:
            return claimed.read_bytes()
        finally:
            claimed.unlink(missing_ok=True)


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1
