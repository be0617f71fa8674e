"""The blob store contract on SeaweedFS, a real S3 server that checks every signature: with
the payload signed (plain http's default) and unsigned (``FILMSTRIP_S3_SIGN_PAYLOAD=false``)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench.seaweed import LoopbackSeaweedFS
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import BUCKET, S3Contract

KEYS = ("seaweed-test-key", "seaweed-test-secret")


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSeaweedFS]:
    folder: Path = tmp_path_factory.mktemp("seaweedfs")
    with LoopbackSeaweedFS(folder, access_key=KEYS[0], secret_key=KEYS[1]) as server:
        yield server


@pytest.fixture(scope="module", params=["auto", "false"], ids=["signed", "unsigned"])
async def s3_opened(
    seaweedfs: LoopbackSeaweedFS, request: pytest.FixtureRequest
) -> AsyncIterator[S3BlobStore]:
    url = f"s3://{BUCKET}"
    env = {
        "FILMSTRIP_BLOB_URL": url,
        "FILMSTRIP_S3_ENDPOINT_URL": seaweedfs.url,
        "FILMSTRIP_S3_ACCESS_KEY_ID": KEYS[0],
        "FILMSTRIP_S3_SECRET_ACCESS_KEY": KEYS[1],
        "FILMSTRIP_S3_SIGN_PAYLOAD": request.param,
    }
    opened = await S3BlobStore.from_settings(url, load_settings(env))
    yield opened
    await opened.close()


class TestSeaweedFSBlobStore(S3Contract):
    async def test_direct_requests_are_accepted(self, store: S3BlobStore) -> None:
        # Not through the fallback: the server takes the direct path's own signatures.
        assert store.direct is not None
        full = store.prefix + "originals/p.jpg"
        etag = await store.direct.put(full, b"abc", "image/jpeg")
        assert etag is not None and etag.strip('"') == hashlib.md5(b"abc").hexdigest()
        resp = await store.direct.get(full)
        assert resp is not None
        assert await resp.read() == b"abc"
        resp.release()

    async def test_a_put_signed_with_the_body_hash_it_is_given_is_accepted(
        self, store: S3BlobStore
    ) -> None:
        # put_stream hands the upload's SHA-256 to the signer. SeaweedFS checks the
        # signature over it but, unlike AWS, not the body against it: that the hash is the
        # body's is the contract suite's `info.sha256` check.
        assert store.direct is not None
        full, data = store.prefix + "originals/h.jpg", b"abc"
        right = hashlib.sha256(data).hexdigest()
        assert await store.direct.put(full, data, "image/jpeg", sha256=right) is not None
        assert await store.get_bytes("originals/h.jpg") == data
        await store.delete("originals/h.jpg")

    async def test_a_wrong_secret_is_refused(self, seaweedfs: LoopbackSeaweedFS) -> None:
        # Guards the suite: the server does check signatures, signed payload or not.
        url = f"s3://{BUCKET}"
        env = {
            "FILMSTRIP_S3_ENDPOINT_URL": seaweedfs.url,
            "FILMSTRIP_S3_ACCESS_KEY_ID": KEYS[0],
            "FILMSTRIP_S3_SECRET_ACCESS_KEY": "not-the-secret",
            "FILMSTRIP_S3_SIGN_PAYLOAD": "false",
        }
        store = await S3BlobStore.from_settings(url, load_settings(env))
        try:
            assert store.direct is not None
            assert await store.direct.put(store.prefix + "x", b"x", "image/jpeg") is None
            with pytest.raises(Exception, match=r"SignatureDoesNotMatch|AccessDenied|403"):
                await store.put_bytes("x", b"x", content_type="image/jpeg")
        finally:
            await store.close()
