"""The behaviour every blob store must show; each backend's suite subclasses this."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterable

import pytest

from filmstrip.blobs import BlobNotFound, BlobStore, BlobTooLarge
from filmstrip.errors import Category, LogicError

MiB = 1024 * 1024
# More than one 8 MiB S3 part, so the S3 suite exercises multipart uploads.
BIG = 9 * MiB + 12345


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Source:
    """An async chunk source that counts how far it was read and can fail midway."""

    def __init__(self, chunks: Iterable[bytes], *, fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.pulled = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.fail_after is not None and self.pulled >= self.fail_after:
                raise ConnectionResetError("client went away")
            self.pulled += 1
            yield chunk


class BlobStoreContract:
    """Subclasses provide a ``store`` fixture and :meth:`leftovers`."""

    async def leftovers(self, store: BlobStore) -> list[str]:
        """Anything a failed write could have left behind (temp files, multipart uploads)."""
        raise NotImplementedError

    async def assert_empty(self, store: BlobStore) -> None:
        assert [info.key async for info in store.list()] == []
        assert await self.leftovers(store) == []

    async def test_content_etag_predicts_the_etag_of_what_is_stored(self, store: BlobStore) -> None:
        # A copy into this store checks its uploads by it, without reading them back.
        data = os.urandom(BIG)
        info = await store.put_stream("e/big", chunks_of(data, MiB + 1), content_type="image/jpeg")
        expected = store.content_etag()
        assert expected is not None
        expected.update(data)
        assert info.etag == expected.hexdigest()
        stat = await store.stat("e/big")
        assert stat is not None and stat.etag == info.etag

    async def test_put_get_round_trip(self, store: BlobStore) -> None:
        info = await store.put_bytes("a/b/photo.jpg", b"jpeg bytes", content_type="image/jpeg")
        assert (info.key, info.size, info.content_type) == ("a/b/photo.jpg", 10, "image/jpeg")
        assert info.etag
        assert await store.get_bytes("a/b/photo.jpg") == b"jpeg bytes"
        stat = await store.stat("a/b/photo.jpg")
        assert stat is not None
        assert (stat.size, stat.etag, stat.content_type) == (10, info.etag, "image/jpeg")

    async def test_overwrite_replaces_content_and_etag(self, store: BlobStore) -> None:
        first = await store.put_bytes("k", b"one", content_type="text/plain")
        second = await store.put_bytes("k", b"two!", content_type="image/png")
        assert first.etag != second.etag
        assert await store.get_bytes("k") == b"two!"
        stat = await store.stat("k")
        assert stat is not None
        assert (stat.size, stat.etag, stat.content_type) == (4, second.etag, "image/png")

    async def test_put_stream_many_chunks(self, store: BlobStore) -> None:
        data = os.urandom(BIG)
        # Uneven chunk sizes, like a network delivers them.
        sizes = [1, 4096, 65536, 300_000, 7]
        pieces, pos, i = [], 0, 0
        while pos < len(data):
            pieces.append(data[pos : pos + sizes[i % len(sizes)]])
            pos += sizes[i % len(sizes)]
            i += 1
        info = await store.put_stream("big/blob.bin", Source(pieces), content_type="image/tiff")
        assert info.size == BIG
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert await store.get_bytes("big/blob.bin") == data
        stat = await store.stat("big/blob.bin")
        assert stat is not None
        assert (stat.size, stat.etag, stat.content_type) == (BIG, info.etag, "image/tiff")
        assert await self.leftovers(store) == []

    async def test_put_stream_empty(self, store: BlobStore) -> None:
        info = await store.put_stream("empty", Source([]), content_type="image/gif")
        assert info.size == 0
        assert info.sha256 == hashlib.sha256(b"").hexdigest()
        assert await store.get_bytes("empty") == b""

    @pytest.mark.parametrize("size", [10, BIG])
    async def test_exactly_at_limit_is_kept(self, store: BlobStore, size: int) -> None:
        data = os.urandom(size)
        info = await store.put_stream(
            "at-limit", chunks_of(data, MiB), content_type="image/jpeg", max_bytes=size
        )
        assert info.size == size
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert await store.get_bytes("at-limit") == data

    # (10, 11): one byte over in the first chunk.
    @pytest.mark.parametrize(("limit", "chunk"), [(10, 4), (10, 11), (BIG, MiB)])
    async def test_over_limit_stops_reading_and_leaves_nothing(
        self, store: BlobStore, limit: int, chunk: int
    ) -> None:
        source = Source([b"x" * chunk] * (limit // chunk + 5))
        with pytest.raises(BlobTooLarge) as caught:
            await store.put_stream("too-big", source, content_type="image/jpeg", max_bytes=limit)
        assert caught.value.limit == limit
        assert caught.value.category is Category.DATA
        # The chunk that crossed the limit is the last one read.
        assert source.pulled == limit // chunk + 1
        assert await store.stat("too-big") is None
        await self.assert_empty(store)

    @pytest.mark.parametrize("fail_after", [0, 3, 10])
    async def test_error_mid_stream_leaves_nothing(self, store: BlobStore, fail_after: int) -> None:
        source = Source([b"y" * MiB] * 12, fail_after=fail_after)
        with pytest.raises(ConnectionResetError):
            await store.put_stream("broken", source, content_type="image/jpeg")
        assert source.pulled == fail_after
        await self.assert_empty(store)

    async def test_failed_overwrite_keeps_the_old_blob(self, store: BlobStore) -> None:
        old = await store.put_bytes("photo", b"old", content_type="image/png")
        with pytest.raises(BlobTooLarge):
            await store.put_stream(
                "photo", Source([b"z" * 64] * 4), content_type="image/jpeg", max_bytes=100
            )
        assert await store.get_bytes("photo") == b"old"
        stat = await store.stat("photo")
        assert stat is not None
        assert (stat.size, stat.etag, stat.content_type) == (3, old.etag, "image/png")
        assert await self.leftovers(store) == []

    async def test_cancelled_upload_leaves_nothing(self, store: BlobStore) -> None:
        reached = asyncio.Event()

        async def stalls() -> AsyncIterator[bytes]:
            for _ in range(10):  # past one S3 part, so a multipart upload is open
                yield b"c" * MiB
            reached.set()
            await asyncio.Event().wait()  # the client stops sending
            yield b""

        task = asyncio.create_task(store.put_stream("cancelled", stalls(), content_type="a/b"))
        await reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await self.assert_empty(store)

    async def test_concurrent_writers_leave_one_whole_blob(self, store: BlobStore) -> None:
        bodies = [bytes([i]) * (1000 + i) for i in range(8)]
        types = [f"image/x-{i}" for i in range(8)]
        writes = [
            store.put_bytes("race", body, content_type=ctype)
            for body, ctype in zip(bodies, types, strict=True)
        ]
        puts = await asyncio.gather(*writes)
        data = await store.get_bytes("race")
        winner = bodies.index(data)
        info = await store.stat("race")
        assert info is not None
        assert (info.etag, info.content_type) == (puts[winner].etag, types[winner])
        assert await self.leftovers(store) == []

    async def test_open_stream_gives_info_and_chunks(self, store: BlobStore) -> None:
        data = os.urandom(3 * MiB + 5)
        put = await store.put_bytes("s/stream.webp", data, content_type="image/webp")
        info, chunks = await store.open_stream("s/stream.webp", chunk_size=MiB)
        assert (info.key, info.size, info.etag, info.content_type) == (
            "s/stream.webp",
            len(data),
            put.etag,
            "image/webp",
        )
        got = [chunk async for chunk in chunks]
        assert b"".join(got) == data
        assert max(len(c) for c in got) <= MiB

    async def test_open_stream_from_an_offset_gives_the_rest(self, store: BlobStore) -> None:
        data = os.urandom(2 * MiB + 7)
        # A key S3 reads percent-encoded goes through botocore, the other one direct.
        for key in ("s/ranged.jpg", "s/ranged copy.jpg"):
            put = await store.put_bytes(key, data, content_type="image/jpeg")
            for start in (1, MiB + 3, len(data) - 1):
                info, chunks = await store.open_stream(key, chunk_size=MiB, start=start)
                assert (info.size, info.etag) == (len(data), put.etag)  # of the whole blob
                assert b"".join([chunk async for chunk in chunks]) == data[start:]
            for start in (len(data), len(data) + 10):  # past the end: the info, no bytes
                info, chunks = await store.open_stream(key, start=start)
                assert (info.size, info.etag) == (len(data), put.etag)
                assert [chunk async for chunk in chunks] == []
        with pytest.raises(BlobNotFound):
            await store.open_stream("s/absent.jpg", start=5)

    async def test_open_stream_tells_the_stored_type_and_time(self, store: BlobStore) -> None:
        # Not the type the key suggests, nor the time of the read.
        await store.put_bytes("t/raw.bin", b"x", content_type="image/heic")
        written = time.time()
        await asyncio.sleep(2.1)
        info, chunks = await store.open_stream("t/raw.bin")
        assert [chunk async for chunk in chunks] == [b"x"]
        assert info.content_type == "image/heic"
        assert abs(info.modified - written) < 1.5  # S3's Last-Modified is in whole seconds

    async def test_open_stream_can_be_abandoned(self, store: BlobStore) -> None:
        await store.put_bytes("half", b"h" * (2 * MiB), content_type="image/jpeg")
        _, chunks = await store.open_stream("half", chunk_size=1024)
        first = await anext(chunks)
        assert first == b"h" * 1024
        await chunks.aclose()  # type: ignore[attr-defined]
        assert await store.get_bytes("half") == b"h" * (2 * MiB)

    async def test_missing_blob(self, store: BlobStore) -> None:
        assert await store.stat("nope/missing.jpg") is None
        with pytest.raises(BlobNotFound) as caught:
            await store.get_bytes("nope/missing.jpg")
        assert caught.value.key == "nope/missing.jpg"
        assert caught.value.category is Category.DATA
        with pytest.raises(BlobNotFound):
            await store.open_stream("nope/missing.jpg")

    async def test_delete_is_idempotent(self, store: BlobStore) -> None:
        await store.put_bytes("d/x", b"1", content_type="image/jpeg")
        await store.delete("d/x")
        assert await store.stat("d/x") is None
        await store.delete("d/x")
        await store.delete("never/was")
        await self.assert_empty(store)

    async def test_list_by_prefix(self, store: BlobStore) -> None:
        for key in ("b/4", "a/2", "ab/3", "a/1", "a/sub/5"):
            await store.put_bytes(key, key.encode(), content_type="image/jpeg")
        listed = [info async for info in store.list()]
        assert [i.key for i in listed] == ["a/1", "a/2", "a/sub/5", "ab/3", "b/4"]
        assert [i.size for i in listed] == [3, 3, 7, 4, 3]
        assert [i.key async for i in store.list("a/")] == ["a/1", "a/2", "a/sub/5"]
        assert [i.key async for i in store.list("a")] == ["a/1", "a/2", "a/sub/5", "ab/3"]
        assert [i.key async for i in store.list("a/s")] == ["a/sub/5"]
        assert [i.key async for i in store.list("zzz/")] == []

    async def test_delete_prefix(self, store: BlobStore) -> None:
        for key in ("p/1", "p/2", "p/q/3", "pp/4"):
            await store.put_bytes(key, b"x", content_type="image/jpeg")
        assert await store.delete_prefix("p/") == 3
        assert [i.key async for i in store.list()] == ["pp/4"]
        assert await store.delete_prefix("p/") == 0
        assert await store.delete_prefix("pp/") == 1  # a batch of one
        await self.assert_empty(store)

    @pytest.mark.parametrize(
        "key",
        ["", "../escape", "a/../../escape", "/etc/passwd", "a\x00b", "a//b", "a/./b", ".tmp/x",
         ".meta/x.json", "a\\..\\b"],
    )  # fmt: skip
    async def test_unsafe_keys_are_rejected(self, store: BlobStore, key: str) -> None:
        with pytest.raises(LogicError):
            await store.put_bytes(key, b"x", content_type="image/jpeg")
        with pytest.raises(LogicError):
            await store.put_stream(key, Source([b"x"]), content_type="image/jpeg")
        with pytest.raises(LogicError):
            await store.get_bytes(key)
        with pytest.raises(LogicError):
            await store.stat(key)
        with pytest.raises(LogicError):
            await store.delete(key)
        await self.assert_empty(store)

    async def test_ping(self, store: BlobStore) -> None:
        await store.ping()
        await self.assert_empty(store)
