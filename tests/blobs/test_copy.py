"""Copying a file store into S3 (``filmstrip.blobs.copy``, moto over HTTP): every blob,
streamed, checked by the ETag S3 computed (multipart ones too) or by reading back; equal
blobs skipped on a second run; a cut resumed; differing or corrupt blobs named; the
source only read."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.moto_server import MotoServer
from bench.tcp_proxy import TcpProxy
from filmstrip.blobs import BlobInfo, BlobStoreUnavailable
from filmstrip.blobs import copy as blob_copy
from filmstrip.blobs.base import ContentEtag
from filmstrip.blobs.copy import BlobCopyResult, Outcome
from filmstrip.blobs.fs import FileBlobStore
from filmstrip.blobs.s3 import PART_SIZE, S3BlobStore
from filmstrip.settings import load_settings

BUCKET = "filmstrip-copy"

SMALL = {f"originals/{i:02d}": os.urandom(1000 + i) for i in range(10)} | {
    "derivatives/00/thumbnail.webp": b"RIFF....WEBP",
    "derivatives/00/preview.jpg": b"\xff\xd8\xff" + b"j" * 3000,
    "empty": b"",
}
BIG_KEY = "originals/big"


async def _client(endpoint: str) -> S3BlobStore:
    settings = load_settings(
        {
            "FILMSTRIP_S3_ENDPOINT_URL": endpoint,
            "FILMSTRIP_S3_ACCESS_KEY_ID": "test",
            "FILMSTRIP_S3_SECRET_ACCESS_KEY": "test",
        }
    )
    return await S3BlobStore.from_settings(f"s3://{BUCKET}", settings)


@pytest.fixture(scope="module")
async def s3(moto_server: MotoServer) -> AsyncIterator[S3BlobStore]:
    """One client for the module (opening one loads botocore's models)."""
    opened = await _client(moto_server.url)
    yield opened
    await opened.close()


async def _chunks(data: bytes, size: int = 1024 * 1024 + 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[FileBlobStore]:
    """A file store like ``filmstrip dev``'s: small blobs and one past a multipart part."""
    store = FileBlobStore(tmp_path / "blobs")
    for key, data in SMALL.items():
        await store.put_bytes(key, data, content_type="image/jpeg")
    big = os.urandom(2 * PART_SIZE + 5)
    await store.put_stream(BIG_KEY, _chunks(big), content_type="image/tiff")
    yield store
    await store.close()


def _target(s3: S3BlobStore, cls: type[S3BlobStore] = S3BlobStore) -> S3BlobStore:
    return cls(s3.client, BUCKET, prefix=f"t-{uuid.uuid4().hex[:12]}/")


@pytest.fixture
async def target(s3: S3BlobStore) -> AsyncIterator[S3BlobStore]:
    store = _target(s3)
    yield store
    await store.delete_prefix("")


async def _run(source: Any, target: Any, **options: Any) -> BlobCopyResult:
    plan = await blob_copy.inspect(source, target)
    return await blob_copy.copy(plan, source, target, **options)


async def _contents(store: Any) -> dict[str, bytes]:
    return {info.key: await store.get_bytes(info.key) async for info in store.list()}


def _tree(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root`` (sidecars and temp files too): size, mtime, SHA-256."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, digest)
    return found


async def test_every_blob_is_copied_and_checked_by_the_etag_s3_computed(
    source: FileBlobStore, target: S3BlobStore
) -> None:
    before = _tree(source.root)

    result = await _run(source, target)

    blobs = len(SMALL) + 1
    assert result.count(Outcome.COPIED) == blobs and result.faults == 0
    # The big one went up in three parts; its ETag was still computed here.
    assert result.checked_by_etag == blobs and result.checked_by_reading == 0
    assert await _contents(target) == await _contents(source)
    stat = await target.stat(BIG_KEY)
    assert stat is not None and stat.content_type == "image/tiff" and stat.etag.endswith("-3")
    assert _tree(source.root) == before  # the source is only read


async def test_a_second_run_copies_nothing(source: FileBlobStore, target: S3BlobStore) -> None:
    await _run(source, target)
    listed = {info.key: info async for info in target.list()}

    result = await _run(source, target)

    assert result.count(Outcome.PRESENT) == len(listed) and result.count(Outcome.COPIED) == 0
    assert result.checked_by_etag == len(listed) and result.faults == 0
    assert {info.key: info async for info in target.list()} == listed  # nothing rewritten


async def test_a_copy_cut_midway_stops_and_completes_when_run_again(
    source: FileBlobStore,
    s3: S3BlobStore,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blob_copy, "ATTEMPTS", 1)  # botocore's own retry still runs
    proxy = TcpProxy("127.0.0.1", moto_server.port)
    await proxy.start()
    through_proxy = await _client(proxy.url)
    target = _target(through_proxy)
    cuts: list[asyncio.Task[None]] = []

    def cut_after_three(done: int, total: int, size: int, total_size: int) -> None:
        if done == 3:
            cuts.append(asyncio.create_task(proxy.pause()))

    try:
        result = await _run(source, target, concurrency=2, progress=cut_after_three)
        await asyncio.gather(*cuts)
        # S3 gone: a few blobs fail, then the run stops instead of trying each one left.
        failed = result.count(Outcome.FAILED)
        assert blob_copy.FAILURES_IN_A_ROW <= failed <= blob_copy.FAILURES_IN_A_ROW + 1
        assert result.count(Outcome.NOT_TRIED) > 0
        copied = result.count(Outcome.COPIED)
        assert copied >= 3
        assert copied + failed + result.count(Outcome.NOT_TRIED) == len(SMALL) + 1

        await proxy.resume()
        again = await _run(source, target, concurrency=2)

        assert again.faults == 0
        # A blob whose answer the cut lost may be there already: found equal, not copied.
        assert copied <= again.count(Outcome.PRESENT) <= copied + failed
        assert again.count(Outcome.PRESENT) + again.count(Outcome.COPIED) == len(SMALL) + 1
        assert await _contents(target) == await _contents(source)
    finally:
        await proxy.close()
        await through_proxy.close()
        await S3BlobStore(s3.client, BUCKET, prefix=target.prefix).delete_prefix("")


async def test_a_target_blob_that_differs_is_reported_and_kept_unless_overwriting(
    source: FileBlobStore, target: S3BlobStore
) -> None:
    await _run(source, target)
    same_size = bytes([SMALL["originals/03"][0] ^ 1]) + SMALL["originals/03"][1:]
    await target.put_bytes("originals/03", same_size, content_type="image/jpeg")
    await target.put_bytes("originals/04", b"shorter", content_type="image/jpeg")

    result = await _run(source, target)

    conflicts = result.outcomes[Outcome.CONFLICT]
    assert sorted(conflicts.examples) == [
        ("originals/03", "same size, other content"),
        ("originals/04", "7 bytes in the target, 1004 in the source"),
    ]
    assert result.faults == 2
    assert await target.get_bytes("originals/03") == same_size

    result = await _run(source, target, overwrite=True)

    assert result.count(Outcome.REPLACED) == 2 and result.faults == 0
    assert await _contents(target) == await _contents(source)


def _flip_a_bit(path: Path) -> None:
    """A flipped bit on disk: same inode, size and mtime (the sidecar's SHA-256 stands)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[10] ^= 0x40
    with path.open("r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


async def test_a_source_file_that_no_longer_matches_its_sha256_is_not_copied(
    source: FileBlobStore, target: S3BlobStore
) -> None:
    _flip_a_bit(source.root / "originals/05")

    result = await _run(source, target)

    assert [k for k, _ in result.outcomes[Outcome.SOURCE_CORRUPT].examples] == ["originals/05"]
    assert result.faults == 1
    assert await target.stat("originals/05") is None  # not left in the target


async def test_a_source_file_corrupted_after_its_copy_keeps_the_good_copy_when_overwriting(
    source: FileBlobStore, target: S3BlobStore
) -> None:
    # A second run after the source rotted: the target's copy is the good one. Reported as
    # a conflict, --overwrite would replace it, find the source corrupt and delete it.
    await _run(source, target)
    good = SMALL["originals/05"]
    _flip_a_bit(source.root / "originals/05")

    result = await _run(source, target, overwrite=True)

    assert [k for k, _ in result.outcomes[Outcome.SOURCE_CORRUPT].examples] == ["originals/05"]
    assert result.count(Outcome.REPLACED) == 0 and result.faults == 1
    assert await target.get_bytes("originals/05") == good


async def test_a_rotten_source_never_overwrites_a_target_blob_of_another_size(
    source: FileBlobStore, target: S3BlobStore
) -> None:
    # Sizes differ, so the conflict is found without reading the source; --overwrite must
    # still find the source corrupt before its copy goes over the target's blob.
    await _run(source, target)
    theirs = SMALL["originals/05"] + b"an older version, longer"
    await target.put_bytes("originals/05", theirs, content_type="image/jpeg")
    _flip_a_bit(source.root / "originals/05")

    result = await _run(source, target, overwrite=True)

    assert [k for k, _ in result.outcomes[Outcome.SOURCE_CORRUPT].examples] == ["originals/05"]
    assert result.count(Outcome.REPLACED) == 0
    assert await target.get_bytes("originals/05") == theirs


async def test_a_blob_deleted_from_the_source_meanwhile_is_skipped(
    source: FileBlobStore, target: S3BlobStore
) -> None:
    plan = await blob_copy.inspect(source, target)
    await source.delete("originals/06")

    result = await blob_copy.copy(plan, source, target)

    assert result.outcomes[Outcome.GONE].examples == [("originals/06", "")]
    assert result.faults == 0 and await target.stat("originals/06") is None


async def test_a_dry_run_writes_nothing(source: FileBlobStore, target: S3BlobStore) -> None:
    result = await _run(source, target, write=False)

    assert result.count(Outcome.COPIED) == len(SMALL) + 1
    assert [info async for info in target.list()] == []


async def test_a_dry_run_that_would_overwrite_writes_nothing(
    source: FileBlobStore, target: S3BlobStore
) -> None:
    await _run(source, target)
    other = bytes([SMALL["originals/03"][0] ^ 1]) + SMALL["originals/03"][1:]
    await target.put_bytes("originals/03", other, content_type="image/jpeg")
    before = await _contents(target)

    result = await _run(source, target, write=False, overwrite=True)

    assert [k for k, _ in result.outcomes[Outcome.CONFLICT].examples] == ["originals/03"]
    assert result.count(Outcome.REPLACED) == 0
    assert await _contents(target) == before


async def test_a_blob_whose_upload_failed_for_a_moment_is_sent_again(
    source: FileBlobStore, s3: S3BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_copy, "RETRY_DELAY_S", 0.01)
    blinked: list[str] = []

    class Blinking(S3BlobStore):
        """Each blob's first upload fails as S3 does for a moment (a 503, a reset)."""

        async def put_stream(self, key: str, chunks: AsyncIterable[bytes], **kw: Any) -> BlobInfo:
            if key not in blinked:
                blinked.append(key)
                raise BlobStoreUnavailable("S3 answered 503 SlowDown")
            return await super().put_stream(key, chunks, **kw)

    target = _target(s3, Blinking)
    try:
        result = await _run(source, target)
        assert result.count(Outcome.COPIED) == len(SMALL) + 1 and result.faults == 0
        assert sorted(blinked) == sorted([*SMALL, BIG_KEY])
        assert await _contents(target) == await _contents(source)
    finally:
        await target.delete_prefix("")


class _OtherEtags(S3BlobStore):
    """A store whose ETags are not MD5s (as with SSE-KMS)."""

    def content_etag(self) -> ContentEtag | None:
        return None


class _Garbling(S3BlobStore):
    """A store that keeps other bytes than it was sent."""

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        data = b"".join([c async for c in chunks])
        return await self.put_bytes(key, data[::-1] + b"!", content_type=content_type)


class _Losing(_OtherEtags):
    """A store with other ETags that answers an upload and keeps nothing."""

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        size = sum([len(c) async for c in chunks])
        return BlobInfo(key=key, size=size, etag="kms", content_type=content_type, modified=0.0)


async def test_a_store_with_other_etags_is_checked_by_reading_back(
    source: FileBlobStore, s3: S3BlobStore
) -> None:
    target = _target(s3, _OtherEtags)
    try:
        result = await _run(source, target)
        assert result.count(Outcome.COPIED) == len(SMALL) + 1 and result.faults == 0
        assert result.checked_by_reading == len(SMALL) + 1 and result.checked_by_etag == 0
    finally:
        await target.delete_prefix("")


async def test_a_copy_whose_bytes_differ_is_a_mismatch_and_removed(
    source: FileBlobStore, s3: S3BlobStore
) -> None:
    target = _target(s3, _Garbling)
    try:
        result = await _run(source, target)
        assert result.count(Outcome.MISMATCH) == len(SMALL) + 1
        assert result.count(Outcome.COPIED) == 0
        assert [info async for info in target.list()] == []  # the next run copies them again
    finally:
        await target.delete_prefix("")


async def test_a_copy_the_target_does_not_hold_when_read_back_is_a_mismatch(
    source: FileBlobStore, s3: S3BlobStore
) -> None:
    # Counted as copied, a blob the target lost would be gone once the source is retired.
    target = _target(s3, _Losing)
    result = await _run(source, target)
    assert result.count(Outcome.MISMATCH) == len(SMALL) + 1
    assert result.count(Outcome.COPIED) == 0 and result.bytes_copied == 0


async def test_uploads_at_once_stay_within_the_concurrency(
    source: FileBlobStore, s3: S3BlobStore
) -> None:
    counts = {"now": 0, "most": 0}

    class Counting(S3BlobStore):
        async def put_stream(self, key: str, chunks: AsyncIterable[bytes], **kw: Any) -> BlobInfo:
            counts["now"] += 1
            counts["most"] = max(counts["most"], counts["now"])
            try:
                await asyncio.sleep(0.02)  # long enough for every worker to arrive
                return await super().put_stream(key, chunks, **kw)
            finally:
                counts["now"] -= 1

    target = _target(s3, Counting)
    try:
        result = await _run(source, target, concurrency=3)
        assert result.count(Outcome.COPIED) == len(SMALL) + 1
        assert counts["most"] == 3
    finally:
        await target.delete_prefix("")


async def test_a_big_blob_streams_through_without_being_held_whole(
    tmp_path: Path, target: S3BlobStore
) -> None:
    source = FileBlobStore(tmp_path / "big")
    size = 64 * 1024 * 1024
    await source.put_stream("originals/huge", _chunks(os.urandom(size)), content_type="image/tiff")
    plan = await blob_copy.inspect(source, target)
    tracemalloc.start()
    try:
        result = await blob_copy.copy(plan, source, target)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await source.close()
    assert result.count(Outcome.COPIED) == 1 and result.checked_by_etag == 1
    # A part being read, one being sent and the client's buffers: ~37 MiB, whatever the size.
    assert peak < size * 0.75, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB blob"
