"""The blob store contract on S3 (a moto server on loopback), plus outages; the same on
SeaweedFS in test_s3_seaweedfs.py."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from bench.moto_server import MotoServer
from filmstrip import __version__
from filmstrip.blobs import BlobStore, BlobStoreUnavailable
from filmstrip.blobs.s3 import PART_SIZE, PartsLost, S3BlobStore, parse_s3_url
from filmstrip.errors import Category, LogicError
from filmstrip.settings import load_settings
from tests.blobs.contract import BlobStoreContract, Source
from tests.support.recording_endpoint import RecordingEndpoint, recording_endpoint

BUCKET = "filmstrip-test"


def s3_env(endpoint: MotoServer | RecordingEndpoint, url: str) -> dict[str, str]:
    return {
        "FILMSTRIP_BLOB_URL": url,
        "FILMSTRIP_S3_ENDPOINT_URL": endpoint.url,
        "FILMSTRIP_S3_ACCESS_KEY_ID": "test",
        "FILMSTRIP_S3_SECRET_ACCESS_KEY": "test",
    }


@pytest.fixture(scope="module")
async def s3_opened(moto_server: MotoServer) -> AsyncIterator[S3BlobStore]:
    """One client for the module: opening one loads botocore's models (~0.3 s)."""
    url = f"s3://{BUCKET}"
    opened = await S3BlobStore.from_settings(url, load_settings(s3_env(moto_server, url)))
    yield opened
    await opened.close()


class S3Contract(BlobStoreContract):
    """The contract plus S3's own behaviour, on whatever endpoint ``s3_opened`` talks to
    (its client, and its direct GETs and PUTs)."""

    @pytest.fixture
    async def store(self, s3_opened: S3BlobStore) -> AsyncIterator[S3BlobStore]:
        # Each test gets its own key prefix in a shared bucket, which also exercises
        # prefix handling everywhere.
        store = S3BlobStore(
            s3_opened.client,
            BUCKET,
            prefix=f"t-{uuid.uuid4().hex[:12]}/",
            direct=s3_opened.direct,
        )
        yield store
        await store.delete_prefix("")
        for upload in await self._uploads(store):
            await store.client.abort_multipart_upload(
                Bucket=store.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )

    @staticmethod
    async def _uploads(store: S3BlobStore) -> list[dict[str, str]]:
        try:
            resp = await store.client.list_multipart_uploads(
                Bucket=store.bucket, Prefix=store.prefix
            )
        except store.client.exceptions.NoSuchBucket:
            return []
        return list(resp.get("Uploads", []))

    async def leftovers(self, store: BlobStore) -> list[str]:
        assert isinstance(store, S3BlobStore)
        return [u["Key"] for u in await self._uploads(store)]

    async def test_leftovers_sees_an_unfinished_multipart_upload(self, store: S3BlobStore) -> None:
        # Guards the guard: the "nothing left" assertions above must be able to fail.
        await store.ping()
        created = await store.client.create_multipart_upload(
            Bucket=store.bucket, Key=store.prefix + "dangling"
        )
        assert await self.leftovers(store) == [store.prefix + "dangling"]
        await store.client.abort_multipart_upload(
            Bucket=store.bucket, Key=store.prefix + "dangling", UploadId=created["UploadId"]
        )

    async def test_parts_a_multipart_upload_lacks_are_parts_lost(self, store: S3BlobStore) -> None:
        # S3, moto and SeaweedFS answer InvalidPart: tus must tell that loss from a
        # refusal (s3_refused, a 500).
        await store.ping()
        upload_id = await store.create_parts("mp-lost", content_type="image/jpeg")
        etag = await store.put_part("mp-lost", upload_id, 1, b"p" * PART_SIZE)
        with pytest.raises(PartsLost):
            await store.complete_parts(
                "mp-lost", upload_id, [(1, etag), (2, etag)], content_type="image/jpeg"
            )
        await store.abort_parts("mp-lost", upload_id)

    async def test_multipart_etag_shows_the_part_count(self, store: S3BlobStore) -> None:
        info = await store.put_stream(
            "mp", Source([b"m" * (1024 * 1024)] * 17), content_type="image/jpeg"
        )
        assert info.etag.endswith("-3")  # 8 MiB + 8 MiB + 1 MiB

    @pytest.mark.parametrize(
        "size", [0, 1, PART_SIZE, PART_SIZE + 1, 2 * PART_SIZE, 2 * PART_SIZE + 3]
    )
    async def test_content_etag_is_the_etag_s3_gives(self, store: S3BlobStore, size: int) -> None:
        # What a copy checks its uploads by: S3's MD5, or MD5 of the parts' MD5s and a count.
        data = os.urandom(size)
        chunks = [data[i : i + 1_000_003] for i in range(0, size, 1_000_003)]
        info = await store.put_stream("etag", Source(chunks), content_type="image/jpeg")
        expected = store.content_etag()
        for piece in (data[:77], data[77:]):  # fed in other pieces than were sent
            expected.update(piece)
        assert info.etag == expected.hexdigest()
        stat = await store.stat("etag")
        assert stat is not None and stat.etag == info.etag


class TestS3BlobStore(S3Contract):
    async def test_outage_is_unavailable_quickly_and_recovers(
        self, store: S3BlobStore, moto_server: MotoServer
    ) -> None:
        await store.put_bytes("before", b"b", content_type="image/jpeg")
        moto_server.stop()
        try:
            started = time.monotonic()
            # At once: each backs off between its two attempts (up to 1 s), which in turn
            # would add up; each must still fail on its own.
            outcomes = await asyncio.gather(
                store.ping(),
                store.put_bytes("during", b"d", content_type="image/jpeg"),
                store.put_stream(
                    "during-mp", Source([b"d" * (1024 * 1024)] * 10), content_type="image/jpeg"
                ),
                store.stat("before"),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
            for outcome in outcomes:
                assert isinstance(outcome, BlobStoreUnavailable), outcome
                assert outcome.category is Category.TEMPORARY
            # Loose on purpose (shared CI box), yet below what one call takes with botocore's
            # default retries (up to 15 s of backoff) or connect timeout (60 s).
            assert elapsed < 10, f"outage took {elapsed:.1f} s to surface"
        finally:
            moto_server.start()
        # moto lost everything on restart; the store recreates the bucket on its own.
        await store.ping()
        info = await store.put_bytes("after", b"a", content_type="image/jpeg")
        assert info.size == 1
        assert await store.get_bytes("after") == b"a"

    async def test_outage_mid_upload_is_unavailable(
        self, store: S3BlobStore, moto_server: MotoServer
    ) -> None:
        async def dies_midway() -> AsyncIterator[bytes]:
            for i in range(30):
                if i == 12:  # one 8 MiB part is up (or in flight)
                    moto_server.stop()
                yield b"p" * (1024 * 1024)

        try:
            with pytest.raises(BlobStoreUnavailable):
                await store.put_stream("cut", dies_midway(), content_type="image/jpeg")
        finally:
            moto_server.start()
        assert await store.stat("cut") is None

    def test_parse_s3_url(self) -> None:
        assert parse_s3_url("s3://bucket") == ("bucket", "")
        assert parse_s3_url("s3://bucket/") == ("bucket", "")
        assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b/")
        for bad in ("s3:///nobucket", "file:///x", "s3://b/../x"):
            with pytest.raises(LogicError):
                parse_s3_url(bad)


async def test_requests_carry_filmstrip_as_their_user_agent() -> None:
    # The store's access log sees this header.
    url = f"s3://{BUCKET}"
    async with recording_endpoint() as endpoint:
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            await store.ping()
        finally:
            await store.close()
    # botocore appends its session's extra (aiobotocore's and its own versions).
    agents = [r.headers.get("User-Agent", "") for r in endpoint.requests]
    assert [agent.split()[0] for agent in agents] == [f"filmstrip/{__version__}"]
