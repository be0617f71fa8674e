"""A plain key's GET and PUT go out once each through aiohttp, signed, carrying our user
agent; any other key, and any answer but a 2xx, go through the aioboto3 client."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from yarl import URL

from filmstrip import __version__
from filmstrip.blobs import BlobNotFound, BlobStoreUnavailable
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.blobs.s3_direct import DirectS3
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env
from tests.support.recording_endpoint import recording_endpoint

AGENT = f"filmstrip/{__version__}"


async def test_a_plain_key_is_one_direct_request_and_another_key_goes_through_botocore() -> None:
    url = "s3://direct"
    async with recording_endpoint() as endpoint:
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            assert store.direct is not None
            await store.put_bytes("derivatives/p1/thumb.webp", b"abc", content_type="image/webp")
            await store.open_stream("originals/p1.jpg")
            await store.put_bytes("originals/a b.jpg", b"abc", content_type="image/jpeg")
        finally:
            await store.close()
    sent = [(r.method, r.path, r.headers.get("User-Agent")) for r in endpoint.requests]
    assert sent[:2] == [
        ("PUT", "/direct/derivatives/p1/thumb.webp", AGENT),
        ("GET", "/direct/originals/p1.jpg", AGENT),
    ]
    # botocore appends its own versions to the agent.
    assert [(m, p) for m, p, _ in sent[2:]] == [("PUT", "/direct/originals/a b.jpg")]
    assert sent[2][2] != AGENT and sent[2][2].startswith(AGENT)
    for r in endpoint.requests:
        assert r.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=test/")
    assert endpoint.requests[0].headers["Content-Type"] == "image/webp"


async def test_a_store_refusing_direct_requests_is_told_once_and_still_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Each refused request costs two; an operator must hear of it, once, not per request.
    url = "s3://direct"
    async with recording_endpoint(lambda r: 403 if r.headers["User-Agent"] == AGENT else 200) as (
        endpoint
    ):
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            with caplog.at_level(logging.WARNING, logger="filmstrip.blobs.s3"):
                for n in range(3):
                    info = await store.put_bytes(f"d/p{n}.webp", b"abc", content_type="image/webp")
                    assert info.size == 3
        finally:
            await store.close()
    assert [r.headers["User-Agent"] == AGENT for r in endpoint.requests] == [True, False] * 3
    refusals = [r for r in caplog.records if getattr(r, "code", None) == "s3_direct_refused"]
    assert len(refusals) == 1 and "403" in refusals[0].getMessage()


async def test_a_missing_blob_or_a_store_outage_is_not_taken_for_a_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Only the answers that say the store will not take direct requests are told: a 404 or
    # a 503 says nothing of the sort, and each status would be told once as if it did.
    url = "s3://direct"
    async with recording_endpoint(lambda r: 503 if r.method == "PUT" else 404) as endpoint:
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            with caplog.at_level(logging.WARNING, logger="filmstrip.blobs.s3"):
                with pytest.raises(BlobNotFound):
                    await store.open_stream("originals/p1.jpg")
                with pytest.raises(BlobStoreUnavailable):
                    await store.put_bytes("d/p1.webp", b"abc", content_type="image/webp")
        finally:
            await store.close()
    assert [r for r in caplog.records if getattr(r, "code", None) == "s3_direct_refused"] == []


@pytest.mark.parametrize(
    ("key", "taken"),
    [
        ("originals/p1.jpg", True),
        ("derivatives/p1/thumb_2x.webp", True),
        ("originals/a b.jpg", False),
        ("originals/a+b.jpg", False),
        ("originals/ü.jpg", False),
        ("originals/p1.jpg?x", False),
        ("originals/%41.jpg", False),
    ],
)
async def test_only_a_key_that_needs_no_percent_encoding_goes_direct(key: str, taken: bool) -> None:
    # The signer signs the path as given: a key S3 would see percent-encoded signs wrong.
    async with aiohttp.ClientSession() as http:
        direct = DirectS3(
            http, endpoint_url="http://127.0.0.1:1", bucket="b", region="us-east-1",
            credentials=None, sign_payload=True, user_agent=AGENT,
        )  # fmt: skip
        assert direct.takes(key) is taken


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://[::1]:8333",
        "http://s3.example.net",
        "https://s3.example.net:443",
        "http://10.0.0.5:8333/",
    ],
)
async def test_the_signed_host_is_the_one_aiohttp_would_send(endpoint: str) -> None:
    # Host is signed, so it is sent as set: brackets round an IPv6 address (without
    # them the header is malformed), no port where it is the scheme's default.
    async with aiohttp.ClientSession() as http:
        direct = DirectS3(
            http, endpoint_url=endpoint, bucket="b", region="us-east-1",
            credentials=None, sign_payload=True, user_agent=AGENT,
        )  # fmt: skip
        assert direct.host == URL(endpoint).host_port_subcomponent
