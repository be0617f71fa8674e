"""A request S3 keeps failing is sent twice through botocore, and a direct one falls back
to botocore once: an outage surfaces after two attempts, not three or four."""

from __future__ import annotations

import asyncio
from collections import Counter

from filmstrip.blobs import BlobStoreUnavailable
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env
from tests.support.recording_endpoint import recording_endpoint


async def test_a_failing_request_is_sent_twice_and_a_direct_one_falls_back_once() -> None:
    url = "s3://down"
    async with recording_endpoint(lambda r: 503 if r.method == "PUT" else 500) as endpoint:
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            # At once: each backs off up to 1 s between its attempts.
            outcomes = await asyncio.gather(
                store.put_bytes("originals/p1.jpg", b"abc", content_type="image/jpeg"),
                store.put_bytes("originals/a b.jpg", b"abc", content_type="image/jpeg"),
                store.open_stream("originals/p2.jpg"),
                store.stat("originals/p3.jpg"),
                return_exceptions=True,
            )
        finally:
            await store.close()
    for outcome in outcomes:
        assert isinstance(outcome, BlobStoreUnavailable), outcome
    sent = Counter((r.method, r.path) for r in endpoint.requests)
    assert sent == {
        # One direct request, then botocore's two attempts.
        ("PUT", "/down/originals/p1.jpg"): 3,
        ("GET", "/down/originals/p2.jpg"): 3,
        # botocore's two attempts.
        ("PUT", "/down/originals/a b.jpg"): 2,
        ("HEAD", "/down/originals/p3.jpg"): 2,
    }
