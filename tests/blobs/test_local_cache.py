"""The worker's local cache of originals: a bounded shortcut that fails as a miss."""

from __future__ import annotations

import os
import time
from pathlib import Path

from filmstrip.blobs.local_cache import LocalBlobCache
from filmstrip.settings import load_settings


def _cache(
    directory: Path, *, max_bytes: int = 1_000_000, max_age_s: float = 3600
) -> LocalBlobCache:
    return LocalBlobCache(directory, max_bytes=max_bytes, max_age_s=max_age_s)


async def test_a_blob_is_taken_once(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    await cache.put("originals/a", b"abc")
    assert await cache.take("originals/a") == b"abc"
    assert await cache.take("originals/a") is None
    assert list(tmp_path.iterdir()) == []


async def test_processes_of_one_host_share_it(tmp_path: Path) -> None:
    mine, theirs = _cache(tmp_path), _cache(tmp_path)
    await mine.put("originals/a", b"abc")
    assert await theirs.take("originals/a") == b"abc"
    assert await mine.take("originals/a") is None


async def test_discard_and_absent_keys(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    await cache.discard("originals/never")
    await cache.put("originals/a", b"abc")
    await cache.discard("originals/a")
    assert await cache.take("originals/a") is None


async def test_a_blob_over_a_quarter_of_the_bound_is_not_kept(tmp_path: Path) -> None:
    cache = _cache(tmp_path, max_bytes=1000)
    await cache.put("originals/big", b"x" * 251)
    assert await cache.take("originals/big") is None
    await cache.put("originals/small", b"x" * 250)
    assert await cache.take("originals/small") == b"x" * 250


async def test_the_oldest_go_first_when_over_the_bound(tmp_path: Path) -> None:
    cache = _cache(tmp_path, max_bytes=10_000)
    now = time.time()
    for i in range(10):
        await cache.put(f"originals/{i}", bytes([i]) * 200)
        os.utime(cache._path(f"originals/{i}"), (now - 100 + i, now - 100 + i))
    cache.max_bytes = 1000  # other processes' writes took the directory over the bound
    assert cache.evict() == 6
    kept = [i for i in range(10) if cache._path(f"originals/{i}").exists()]
    assert kept == [6, 7, 8, 9]  # down to 80% of the bound, newest kept


async def test_writes_scan_once_they_add_an_eighth_of_the_bound(tmp_path: Path) -> None:
    cache = _cache(tmp_path, max_bytes=8000)
    await cache.put("originals/first", b"x" * 10)  # the first write scans (none yet)
    old = time.time() - 7200
    stale = tmp_path / "stale"
    stale.write_bytes(b"s")
    os.utime(stale, (old, old))
    await cache.put("originals/a", b"x" * 1000)
    assert stale.exists()
    await cache.put("originals/b", b"x" * 1)  # over 1,000 bytes since the last scan
    assert not stale.exists()


async def test_expired_entries_and_debris_go(tmp_path: Path) -> None:
    cache = _cache(tmp_path, max_age_s=60)
    await cache.put("originals/old", b"o")
    await cache.put("originals/new", b"n")
    debris = tmp_path / ".tmp-deadbeef"  # a write cut short by a crash
    debris.write_bytes(b"d")
    old = time.time() - 120
    for path in (cache._path("originals/old"), debris):
        os.utime(path, (old, old))
    assert cache.evict() == 2
    assert await cache.take("originals/old") is None
    assert await cache.take("originals/new") == b"n"


async def test_a_cache_that_cannot_write_is_a_miss(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    cache = _cache(blocked / "cache")  # its parent is a file: every write fails
    await cache.put("originals/a", b"abc")
    assert await cache.take("originals/a") is None


async def test_a_write_that_fails_leaves_no_partial_file(tmp_path: Path) -> None:
    # A full disk fails the write or the rename; what was written must not stay behind
    # until it ages out (on a full disk, of all places).
    cache = _cache(tmp_path)
    in_the_way = cache._path("originals/a")
    in_the_way.mkdir()  # the rename into place fails: a directory holds the name
    await cache.put("originals/a", b"abc")
    assert list(tmp_path.iterdir()) == [in_the_way]


def test_only_a_remote_store_gets_one(tmp_path: Path) -> None:
    base = {"FILMSTRIP_DATA_DIR": str(tmp_path)}
    assert LocalBlobCache.for_originals(load_settings(base)) is None
    s3 = {**base, "FILMSTRIP_BLOB_URL": "s3://bucket"}
    cache = LocalBlobCache.for_originals(load_settings(s3))
    assert cache is not None and cache.directory == tmp_path / "cache" / "originals"
    assert cache.max_bytes == 1024 * 1024 * 1024
    off = {**s3, "FILMSTRIP_ORIGINAL_CACHE_MB": "0"}
    assert LocalBlobCache.for_originals(load_settings(off)) is None
