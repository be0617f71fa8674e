"""PUT bodies go out whole, without waiting a round trip for ``100 Continue``."""

from __future__ import annotations

import os

from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env
from tests.support.recording_endpoint import recording_endpoint


async def test_put_object_and_upload_part_send_their_bytes_without_expect_continue() -> None:
    url = "s3://bodies"
    body = os.urandom(300_000)
    async with recording_endpoint() as endpoint:
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            await store.put_bytes("originals/a.jpg", body, content_type="image/jpeg")
            await store.client.upload_part(
                Bucket="bodies", Key="originals/b.jpg", UploadId="u1", PartNumber=1, Body=body
            )
        finally:
            await store.close()
    puts = [r for r in endpoint.requests if r.method == "PUT"]
    assert [r.path for r in puts] == ["/bodies/originals/a.jpg", "/bodies/originals/b.jpg"]
    for put in puts:
        assert put.body == body
        assert put.headers["Content-Length"] == str(len(body))
        assert "Expect" not in put.headers
