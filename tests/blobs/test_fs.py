"""The blob store contract on the filesystem store, plus what only files can get wrong."""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from filmstrip.blobs import BlobNotFound, BlobStore, BlobStoreFull, BlobStoreUnavailable, fs
from filmstrip.blobs.fs import WRITE_BUFFER, FileBlobStore, _os_error
from filmstrip.errors import Category, LogicError
from tests.blobs.contract import BlobStoreContract, Source


class TestFileBlobStore(BlobStoreContract):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[FileBlobStore]:
        store = FileBlobStore.from_url((tmp_path / "blobs").as_uri())
        yield store
        await store.close()

    async def leftovers(self, store: BlobStore) -> list[str]:
        assert isinstance(store, FileBlobStore)
        tmp = store.root / ".tmp"
        return sorted(os.listdir(tmp)) if tmp.exists() else []

    async def test_etag_is_the_content_sha256(self, store: FileBlobStore) -> None:
        info = await store.put_stream("h", Source([b"abc", b"def"]), content_type="image/jpeg")
        assert info.etag == hashlib.sha256(b"abcdef").hexdigest()

    async def test_blob_is_a_plain_file_under_the_root(self, store: FileBlobStore) -> None:
        await store.put_bytes("x/y/z.jpg", b"plain", content_type="image/jpeg")
        assert (store.root / "x/y/z.jpg").read_bytes() == b"plain"

    async def test_traversal_writes_nothing_outside_the_root(
        self, store: FileBlobStore, tmp_path: Path
    ) -> None:
        with pytest.raises(LogicError):
            await store.put_bytes("../outside", b"x", content_type="image/jpeg")
        assert [name for name in os.listdir(tmp_path) if name != "blobs"] == []

    async def test_key_that_collides_with_a_directory_is_a_logic_error(
        self, store: FileBlobStore
    ) -> None:
        await store.put_bytes("a/b", b"1", content_type="image/jpeg")
        await store.put_bytes("c", b"2", content_type="image/jpeg")
        for key in ("a", "c/d"):
            with pytest.raises(LogicError) as caught:
                await store.put_bytes(key, b"x", content_type="image/jpeg")
            assert caught.value.code == "blob_key_conflict"
        assert [i.key async for i in store.list()] == ["a/b", "c"]
        assert [i.key async for i in store.list("c/")] == []
        assert await self.leftovers(store) == []
        assert sorted(os.listdir(store.root / ".meta")) == ["a", "c.json"]

    async def test_sidecar_that_does_not_match_the_file_is_ignored(
        self, store: FileBlobStore
    ) -> None:
        await store.put_bytes("photo.png", b"first", content_type="image/x-custom")
        # Someone (or a torn overwrite) replaces the bytes without the sidecar.
        (store.root / "photo.png").write_bytes(b"second!")
        info = await store.stat("photo.png")
        assert info is not None
        assert info.size == 7
        assert info.content_type == "image/png"  # guessed from the key
        assert info.etag != hashlib.sha256(b"first").hexdigest()

    async def test_bytes_rewritten_in_place_at_the_same_size_are_not_the_sidecars(
        self, store: FileBlobStore
    ) -> None:
        # Same inode, same size: only the mtime tells the sidecar describes other bytes.
        await store.put_bytes("same.png", b"first", content_type="image/x-custom")
        etags = set()
        for n, data in enumerate((b"FIRST", b"third")):
            path = store.root / "same.png"
            path.write_bytes(data)
            stamp = time.time() + 10 * (n + 1)
            os.utime(path, (stamp, stamp))
            info = await store.stat("same.png")
            assert info is not None and info.size == 5
            assert info.content_type == "image/png"  # guessed from the key
            assert info.etag != hashlib.sha256(b"first").hexdigest()
            etags.add(info.etag)
        assert len(etags) == 2  # a strong validator: other bytes, another ETag

    async def test_a_key_through_a_blob_or_naming_a_directory_is_missing(
        self, store: FileBlobStore
    ) -> None:
        # Not an outage (a TEMPORARY error a job would retry): there is no such blob.
        await store.put_bytes("a/b", b"1", content_type="image/jpeg")
        for key in ("a/b/c", "a"):
            with pytest.raises(BlobNotFound):
                await store.get_bytes(key)
            with pytest.raises(BlobNotFound):
                await store.open_stream(key)
            assert await store.stat(key) is None

    async def test_a_stray_dotfile_is_no_blob(self, store: FileBlobStore) -> None:
        # A file no write of ours made (.DS_Store, an editor's swap file) has no valid key.
        await store.put_bytes("d/x.jpg", b"x", content_type="image/jpeg")
        (store.root / "d/.DS_Store").write_bytes(b"finder")
        assert [i.key async for i in store.list()] == ["d/x.jpg"]
        assert await store.delete_prefix("d/") == 1

    async def test_a_failure_while_a_write_runs_leaves_no_temp_file(
        self, store: FileBlobStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The first write creates the temp file in an I/O thread: cleanup must wait for it.
        real_write = fs._TempWriter.write

        def slow_write(writer: fs._TempWriter, data: bytes) -> None:
            time.sleep(0.3)
            real_write(writer, data)

        monkeypatch.setattr(fs._TempWriter, "write", slow_write)
        source = Source([b"x" * WRITE_BUFFER, b"y"], fail_after=1)
        with pytest.raises(ConnectionResetError):
            await store.put_stream("w.jpg", source, content_type="image/jpeg")
        await store.close()  # lets any write still running finish
        assert await self.leftovers(store) == []

    async def test_a_directory_pruned_under_a_write_is_made_again(
        self, store: FileBlobStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A delete of the directory's last blob may prune it between mkdir and rename.
        await store.put_bytes("d/old.jpg", b"o", content_type="image/jpeg")
        real_replace = os.replace
        pruned: list[str] = []

        def replace(src: str, dest: str) -> None:
            if not pruned and os.path.dirname(dest) == str(store.root / "d"):
                os.unlink(store.root / "d/old.jpg")
                os.rmdir(store.root / "d")
                pruned.append(str(dest))
            real_replace(src, dest)

        monkeypatch.setattr(os, "replace", replace)
        await store.put_bytes("d/new.jpg", b"n", content_type="image/jpeg")
        assert pruned and await store.get_bytes("d/new.jpg") == b"n"

    async def test_delete_prunes_empty_directories(self, store: FileBlobStore) -> None:
        await store.put_bytes("o/ab/cd/1.jpg", b"1", content_type="image/jpeg")
        await store.put_bytes("o/ab/2.jpg", b"2", content_type="image/jpeg")
        await store.delete("o/ab/cd/1.jpg")
        assert not (store.root / "o/ab/cd").exists()
        assert (store.root / "o/ab/2.jpg").exists()
        await store.delete("o/ab/2.jpg")
        assert not (store.root / "o").exists()
        assert not (store.root / ".meta/o").exists()

    async def test_ping_fails_when_the_root_is_unusable(self, tmp_path: Path) -> None:
        blocker = tmp_path / "not-a-dir"
        blocker.write_bytes(b"")
        store = FileBlobStore(blocker)
        try:
            with pytest.raises(BlobStoreUnavailable):
                await store.ping()
        finally:
            await store.close()

    async def test_sweep_temp_removes_only_stale_files(self, store: FileBlobStore) -> None:
        tmp = store.root / ".tmp"
        tmp.mkdir(parents=True)
        (tmp / "stale").write_bytes(b"s")
        (tmp / "fresh").write_bytes(b"f")
        old = time.time() - 7200
        os.utime(tmp / "stale", (old, old))
        await store.put_bytes("real", b"r", content_type="image/jpeg")
        assert [i.key async for i in store.list()] == ["real"]  # temp files and sidecars skipped
        await store.delete("real")
        assert await store.sweep_temp(older_than_s=3600) == 1
        assert await self.leftovers(store) == ["fresh"]
        (tmp / "fresh").unlink()

    async def test_a_put_is_fsynced_unless_not_durable(
        self, store: FileBlobStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        synced: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        await store.put_bytes("d/kept.jpg", b"k", content_type="image/jpeg")
        # The file's bytes (still under its temp name), then the directory's new entry.
        where = [os.path.relpath(p, store.root) for p in synced]
        assert len(where) == 2 and where[0].startswith(".tmp/") and where[1] == "d", where
        synced.clear()
        await store.put_bytes("d/again.jpg", b"a", content_type="image/jpeg", durable=False)
        assert synced == []
        assert (store.root / "d/again.jpg").read_bytes() == b"a"
        info = await store.stat("d/again.jpg")
        assert info is not None and info.etag == hashlib.sha256(b"a").hexdigest()

    def test_from_url_rejects_other_urls(self) -> None:
        for url in ("s3://bucket", "file://host/abs", "file:relative"):
            with pytest.raises(LogicError):
                FileBlobStore.from_url(url)


def test_disk_full_is_a_resource_error_and_other_failures_are_temporary() -> None:
    full = _os_error(OSError(errno.ENOSPC, "No space left on device"), "writing 'k'")
    assert isinstance(full, BlobStoreFull)
    assert full.category is Category.RESOURCE
    assert isinstance(full, BlobStoreUnavailable)  # callers answering 503 catch both
    broken = _os_error(OSError(errno.EIO, "I/O error"), "writing 'k'")
    assert type(broken) is BlobStoreUnavailable
    assert broken.category is Category.TEMPORARY
