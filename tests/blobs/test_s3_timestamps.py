"""The fast S3 timestamp parser: the same datetimes as botocore's, and in use."""

from __future__ import annotations

import time
import uuid
from datetime import UTC

import pytest
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

from bench.moto_server import MotoServer
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.blobs.s3_timestamps import parse_timestamp
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env

SHAPES = [
    "2026-11-29T23:00:00.000Z",  # ListObjectsV2's LastModified
    "2026-11-29T23:00:00Z",
    "2026-11-29T23:00:00.123456Z",
    "Sun, 29 Nov 2026 23:00:00 GMT",  # the Last-Modified header
    "Mon, 01 Feb 2027 07:08:09 GMT",
    # Shapes S3 does not send, which go to botocore's parser:
    "2026-11-29T23:00:00+01:00",
    "2026-11-29T23:00:00",
    "Sun, 29 Nov 2026 23:00:00 GMT+1",
    "Sunday, 29-Nov-26 23:00:00 GMT",
    "1700000000",
    1700000000,
]


@pytest.mark.parametrize("value", SHAPES)
def test_same_instant_as_botocore(value: object) -> None:
    ours, theirs = parse_timestamp(value), DEFAULT_TIMESTAMP_PARSER(value)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


@pytest.mark.parametrize("value", ["2026-02-30T00:00:00Z", "Sun, 31 Nov 2026 23:00:00 GMT", "x"])
def test_impossible_dates_fail_as_botocore_fails(value: str) -> None:
    with pytest.raises(ValueError):
        DEFAULT_TIMESTAMP_PARSER(value)
    with pytest.raises(ValueError):
        parse_timestamp(value)


async def test_the_store_parses_with_it(moto_server: MotoServer) -> None:
    url = f"s3://timestamps-{uuid.uuid4().hex[:12]}"
    store = await S3BlobStore.from_settings(url, load_settings(s3_env(moto_server, url)))
    try:
        await store.put_bytes("a/b", b"x", content_type="image/jpeg")
        head = await store.client.head_object(Bucket=store.bucket, Key="a/b")
        # botocore's own parser answers with dateutil's tzutc(); ours with datetime.UTC.
        assert head["LastModified"].tzinfo is UTC
        listed = [info async for info in store.list("a/")]
        stat = await store.stat("a/b")
        assert stat is not None and len(listed) == 1
        for modified in (listed[0].modified, stat.modified):
            assert abs(modified - time.time()) < 60
        await store.delete_prefix("")
        await store.client.delete_bucket(Bucket=store.bucket)
    finally:
        await store.close()
