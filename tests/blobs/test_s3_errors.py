"""What each refusal of S3 means to the roles: a throttle or a server error is TEMPORARY
(the job is retried), whatever its status (S3 sends RequestTimeout as a 400); a missing
key is not found (DATA); any other refusal is a LogicError (configuration, not weather).
A DeleteObjects that leaves keys behind is an error, though S3 answers it with a 200."""

from __future__ import annotations

import asyncio

import pytest

from filmstrip.blobs import BlobNotFound, BlobStoreUnavailable
from filmstrip.blobs.s3 import S3BlobStore
from filmstrip.errors import Category, LogicError
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env
from tests.support.recording_endpoint import Recorded, recording_endpoint

# The key names the answer: /<bucket>/<status>-<code>.
ANSWERS = {
    "503-SlowDown": (BlobStoreUnavailable, Category.TEMPORARY),
    "500-InternalError": (BlobStoreUnavailable, Category.TEMPORARY),
    "400-RequestTimeout": (BlobStoreUnavailable, Category.TEMPORARY),
    "400-Throttling": (BlobStoreUnavailable, Category.TEMPORARY),
    "404-NoSuchKey": (BlobNotFound, Category.DATA),
    "403-AccessDenied": (LogicError, Category.LOGIC),
    "400-InvalidArgument": (LogicError, Category.LOGIC),
}


def _answer(r: Recorded) -> tuple[int, str]:
    status, code = r.path.rsplit("/", 1)[1].split("-")
    return int(status), code


def _error_xml(r: Recorded) -> bytes:
    code = _answer(r)[1]
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>as S3 says it</Message><RequestId>1</RequestId></Error>"
    ).encode()


async def test_each_refusal_has_its_category() -> None:
    url = "s3://errors"
    async with recording_endpoint(lambda r: _answer(r)[0], _error_xml) as endpoint:
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            # At once: each backs off up to 1 s between its attempts.
            outcomes = await asyncio.gather(
                *(store.open_stream(key) for key in ANSWERS), return_exceptions=True
            )
        finally:
            await store.close()
    for key, outcome in zip(ANSWERS, outcomes, strict=True):
        kind, category = ANSWERS[key]
        assert isinstance(outcome, kind), (key, outcome)
        assert outcome.category is category, (key, outcome)
        if kind is LogicError:
            # S3's code is for the log; a client (a 500, a failed photo) sees one of ours.
            assert outcome.code == "s3_refused" and key.split("-")[1] in outcome.message


_LISTED = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>errors</Name>
<Prefix>derivatives/p1/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
<IsTruncated>false</IsTruncated>{}</ListBucketResult>"""
_OBJECT = (
    "<Contents><Key>derivatives/p1/{}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
    '<ETag>"0"</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>'
)
_NOT_DELETED = """<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Deleted><Key>derivatives/p1/preview.jpg</Key></Deleted>
<Error><Key>derivatives/p1/thumbnail.webp</Key><Code>InternalError</Code>
<Message>We encountered an internal error.</Message></Error>
</DeleteResult>"""


async def test_a_prefix_delete_that_s3_answers_in_part_is_an_error() -> None:
    # DeleteObjects answers 200 and names the keys it did not delete in its body: a photo
    # deleted with such an answer taken for success would keep a derivative in the store.
    def answer(r: Recorded) -> bytes:
        if r.method == "GET":  # the listing
            listed = "".join(_OBJECT.format(n) for n in ("preview.jpg", "thumbnail.webp"))
            return _LISTED.format(listed).encode()
        return _NOT_DELETED.encode()

    url = "s3://errors"
    async with recording_endpoint(body=answer) as endpoint:
        store = await S3BlobStore.from_settings(url, load_settings(s3_env(endpoint, url)))
        try:
            with pytest.raises(BlobStoreUnavailable, match=r"thumbnail\.webp"):
                await store.delete_prefix("derivatives/p1/")
        finally:
            await store.close()
    assert [r.method for r in endpoint.requests] == ["GET", "POST"]
