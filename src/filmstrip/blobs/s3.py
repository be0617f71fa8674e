"""Blobs in an S3 bucket (AWS, MinIO, moto, ...) through one long-lived aioboto3 client.

Uploads up to one part (8 MiB) go out as a single PutObject; larger ones stream as a
multipart upload that is aborted on any error, so a failed or oversized upload leaves
nothing behind, not even invisible parts. Timeouts and retries are kept short so callers
learn within a few seconds that S3 is down and can answer 503.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from datetime import datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import aioboto3
import aiohttp
from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
)

from filmstrip import __version__
from filmstrip.blobs.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    BlobTooLarge,
    ContentEtag,
)
from filmstrip.blobs.fs import guess_content_type
from filmstrip.blobs.s3_direct import DirectS3
from filmstrip.blobs.s3_timestamps import parse_timestamp
from filmstrip.blobs.validation import check_key, check_prefix
from filmstrip.compat.botocore import send_bodies_as_bytes, share_endpoint_resolution
from filmstrip.errors import DataError, LogicError
from filmstrip.settings import BlobSettings, Settings

T = TypeVar("T")

USER_AGENT = f"filmstrip/{__version__}"
PART_SIZE = 8 * 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects' limit
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET = "NoSuchBucket"
_PARTS_LOST = frozenset({"NoSuchUpload", "InvalidPart"})
_TRANSIENT = frozenset(
    {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling"}
)
_TRANSPORT = (
    ConnectionError,
    HTTPClientError,
    ResponseStreamingError,
    IncompleteReadError,
    aiohttp.ClientError,  # a body read through DirectS3
)


def client_config(*, sign_payload: bool = True) -> Config:
    """Short timeouts and two attempts: an outage must surface in seconds, not minutes."""
    return Config(
        connect_timeout=2,
        read_timeout=10,
        # Two sends in all: botocore's ``max_attempts`` counts retries (2 sent 3 times).
        retries={"total_max_attempts": 2, "mode": "standard"},
        max_pool_connections=32,
        # Path-style works with every S3 clone on a custom endpoint; AWS accepts it too.
        # Hashing a body for its signature costs ~0.7 ms of CPU per MB (SHA-256), the api's
        # 3 MB upload 2 ms: see sign_payload.
        s3={"addressing_style": "path", "payload_signing_enabled": sign_payload},
        # The CRC checksums botocore sends by default since 1.36 break several S3 clones.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # A fixed agent names us in the store's access logs. botocore's own is rebuilt for
        # every request from some forty sanitised parts: 0.1 of the ~1.2 ms of client CPU
        # a request costs.
        user_agent=USER_AGENT,
    )


def sign_payload(blobs: BlobSettings) -> bool:
    """``s3_sign_payload``, its ``auto`` made true over plain http, false over https.

    Unsigned, a PUT's signature still covers its headers (Content-Length among them), so no
    one without the key can make or replay a request, but a body changed on the way would
    be stored: over https TLS rules that out; over http only the body's hash does.
    """
    if blobs.s3_sign_payload is not None:
        return blobs.s3_sign_payload
    return not (blobs.s3_endpoint_url or "https://").lower().startswith("https://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise LogicError(f"blob URL {url!r} is not s3://bucket[/prefix]", code="bad_blob_url")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
        prefix += "/"
    return parts.netloc, prefix


class _NoSuchBucket(Exception):
    """Internal: the bucket is gone; writers create it and retry once."""


class PartsLost(DataError):
    """A multipart upload is gone (aborted by a bucket lifecycle rule, an operator or
    another tool) or lacks parts it was given: what it held cannot be had back."""

    def __init__(self, key: str, upload_id: str) -> None:
        super().__init__(f"multipart upload {upload_id!r} to {key!r} lost", code="parts_lost")
        self.key = key


class S3BlobStore(BlobStore):
    """A :class:`BlobStore` on one bucket, optionally under a key prefix."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "",
        region: str = "us-east-1",
        create_bucket: bool = True,
        exit_stack: contextlib.AsyncExitStack | None = None,
        direct: DirectS3 | None = None,
    ) -> None:
        self.client = client
        self.direct = direct
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.create_bucket = create_bucket
        self._exit_stack = exit_stack
        self._bucket_lock = asyncio.Lock()

    @classmethod
    async def from_settings(cls, url: str, settings: Settings) -> S3BlobStore:
        """Open the client once for ``s3://bucket[/prefix]`` with the ``s3_*`` settings."""
        bucket, prefix = parse_s3_url(url)
        botocore_session = AioSession()
        parsers = botocore_session.get_component("response_parser_factory")
        parsers.set_parser_defaults(timestamp_parser=parse_timestamp)
        session = aioboto3.Session(
            botocore_session=botocore_session,
            aws_access_key_id=settings.blobs.s3_access_key_id or None,
            aws_secret_access_key=settings.blobs.s3_secret_access_key or None,
            region_name=settings.blobs.s3_region or None,
        )
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=settings.blobs.s3_endpoint_url or None,
                config=client_config(sign_payload=sign_payload(settings.blobs)),
            )
        )
        share_endpoint_resolution(client)
        send_bodies_as_bytes(client)
        config = client.meta.config
        http = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=config.max_pool_connections),
                timeout=aiohttp.ClientTimeout(
                    sock_connect=config.connect_timeout, sock_read=config.read_timeout
                ),
                skip_auto_headers=("Content-Type",),
            )
        )
        credentials = await botocore_session.get_credentials()
        direct = credentials and DirectS3(
            http,
            endpoint_url=client.meta.endpoint_url,
            bucket=bucket,
            region=client.meta.region_name,
            credentials=credentials,
            sign_payload=sign_payload(settings.blobs),
            user_agent=USER_AGENT,
        )
        return cls(
            client,
            bucket,
            prefix=prefix,
            region=settings.blobs.s3_region,
            exit_stack=stack,
            direct=direct,
        )

    async def close(self) -> None:
        """Close the client and its connection pool."""
        if self._exit_stack is not None:
            stack, self._exit_stack = self._exit_stack, None
            await stack.aclose()

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    # --- bucket -------------------------------------------------------------------------

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (the embedded and test modes rely on this)."""
        async with self._bucket_lock:
            try:
                with _errors():
                    await self.client.head_bucket(Bucket=self.bucket)
                return
            except (_NoSuchBucket, BlobNotFound):
                pass
            if not self.create_bucket:
                raise LogicError(f"bucket {self.bucket!r} does not exist", code="no_bucket")
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.region and self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                with _errors():
                    await self.client.create_bucket(**kwargs)
            except LogicError as exc:
                # Another process won the race to create it.
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def _writing(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a write; if the bucket is missing, create it and try once more."""
        try:
            with _errors():
                return await call()
        except _NoSuchBucket:
            await self.ensure_bucket()
            with _errors():
                return await call()

    # --- writes -------------------------------------------------------------------------

    async def put_bytes(
        self, key: str, data: bytes, *, content_type: str, durable: bool = True
    ) -> BlobInfo:
        """One PutObject (S3 answers only once the object is stored: always durable)."""
        return await self._put_object(key, data, content_type, None)

    async def _put_object(
        self, key: str, data: bytes, content_type: str, sha256: str | None
    ) -> BlobInfo:
        """PutObject; ``sha256``, the body's digest if the caller has it, spares the signer
        hashing the body again."""
        full = self._key(key)
        etag: str | None = None
        if self.direct is not None and self.direct.takes(full):
            etag = await self.direct.put(full, data, content_type, sha256=sha256)
        if etag is None:
            resp = await self._writing(
                lambda: self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=data, ContentType=content_type
                )
            )
            etag = _etag(resp)
        return BlobInfo(
            key=key,
            size=len(data),
            etag=etag.strip('"'),
            content_type=content_type,
            modified=time.time(),
            sha256=sha256,
        )

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> BlobInfo:
        """PutObject up to 8 MiB, else a multipart upload aborted on any failure.

        One part uploads while the next one is received, so a large upload takes about
        as long as the slower of the two sides, not their sum.
        """
        full = self._key(key)
        # The chunks of the part being filled, joined once when it goes out: a bytearray
        # grown chunk by chunk and copied out cost a 3 MB upload 5.5 ms of CPU (reallocs
        # and page faults of fresh memory), the join 0.1 ms (bench/s3_requests.py).
        pending: builtins.list[bytes] = []
        digest = hashlib.sha256()
        filled = 0
        total = 0
        upload: _MultipartUpload | None = None
        try:
            async for chunk in chunks:
                total += len(chunk)
                if max_bytes is not None and total > max_bytes:
                    raise BlobTooLarge(max_bytes)
                if upload is not None:
                    upload.raise_if_failed()
                digest.update(chunk)
                pending.append(chunk)
                filled += len(chunk)
                # Strictly greater: a body of exactly one part still goes as one PutObject.
                while filled > PART_SIZE:
                    if upload is None:
                        upload = await self._start_multipart(full, content_type)
                    joined = b"".join(pending)
                    rest = joined[PART_SIZE:]
                    pending, filled = [rest], len(rest)
                    await upload.add_part(joined[:PART_SIZE])
            body = b"".join(pending)
            if upload is None:
                return await self._put_object(key, body, content_type, digest.hexdigest())
            if body:
                await upload.add_part(body)
            resp = await upload.complete()
            upload = None
            return BlobInfo(
                key=key,
                size=total,
                etag=_etag(resp),
                content_type=content_type,
                modified=time.time(),
                sha256=digest.hexdigest(),
            )
        except BaseException:
            if upload is not None:
                # Shielded: the parts cost storage until aborted, so a cancellation must
                # not skip this.
                await asyncio.shield(upload.abort())
            raise

    async def _start_multipart(self, full: str, content_type: str) -> _MultipartUpload:
        created = await self._writing(
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ContentType=content_type
            )
        )
        return _MultipartUpload(self.client, self.bucket, full, str(created["UploadId"]))

    # --- multipart uploads that outlive a request (tus: parts from several processes) -

    async def create_parts(self, key: str, *, content_type: str) -> str:
        """Start a multipart upload to ``key`` that stays open until completed or aborted,
        whichever process does that; its upload id."""
        full = self._key(key)
        created = await self._writing(
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ContentType=content_type
            )
        )
        return str(created["UploadId"])

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload part ``number`` (1-10000; at least 5 MiB unless it is the last); its ETag.
        The same number again replaces the part; :class:`PartsLost` if the upload is gone."""
        with _errors(key), _parts_errors(key, upload_id):
            resp = await self.client.upload_part(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            )
        return _etag(resp)

    async def complete_parts(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], *, content_type: str
    ) -> BlobInfo:
        """Join ``parts`` (number, ETag), in number order, into the object at ``key``.
        S3 checks each ETag, so a part replaced since it was recorded fails the join;
        :class:`PartsLost` if the upload or one of the parts is gone."""
        with _errors(key), _parts_errors(key, upload_id):
            resp = await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in sorted(parts)]
                },
            )
        info = await self.stat(key)
        if info is None:
            raise BlobNotFound(key)
        return BlobInfo(
            key=key,
            size=info.size,
            etag=_etag(resp),
            content_type=content_type,
            modified=info.modified,
        )

    async def abort_parts(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts; one already gone is fine."""
        try:
            with _errors(key):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
                )
        except (BlobNotFound, _NoSuchBucket):
            pass
        except LogicError as exc:
            if exc.code != "NoSuchUpload":
                raise

    async def list_parts_uploads(self, prefix: str) -> AsyncIterator[tuple[str, str, float]]:
        """``(key, upload id, started at)`` of the open multipart uploads under ``prefix``."""
        check_prefix(prefix)
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            with _errors():
                async for page in pages:
                    for upload in page.get("Uploads", ()):
                        key = str(upload["Key"])[len(self.prefix) :]
                        yield key, str(upload["UploadId"]), _timestamp(upload.get("Initiated"))
        except _NoSuchBucket:
            return

    async def delete(self, key: str) -> None:
        """DeleteObject; absent is fine."""
        full = self._key(key)
        with contextlib.suppress(_NoSuchBucket), _errors(key):
            await self.client.delete_object(Bucket=self.bucket, Key=full)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete in batches of 1000 keys per request."""
        keys = [info.key async for info in self.list(prefix)]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self.prefix + k} for k in keys[start : start + DELETE_BATCH]]
            with contextlib.suppress(_NoSuchBucket), _errors():
                resp = await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                if resp.get("Errors"):
                    first = resp["Errors"][0]
                    raise BlobStoreUnavailable(
                        f"could not delete {len(resp['Errors'])} blobs, first "
                        f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                    )
        return len(keys)

    # --- reads --------------------------------------------------------------------------

    async def get_bytes(self, key: str) -> bytes:
        """The whole blob; :class:`BlobNotFound` if absent."""
        _, chunks = await self.open_stream(key)
        return b"".join([chunk async for chunk in chunks])

    async def open_stream(
        self, key: str, *, chunk_size: int = CHUNK_SIZE, start: int = 0
    ) -> tuple[BlobInfo, AsyncIterator[bytes]]:
        """GetObject (from byte ``start``: a ranged one); the body streams as it is
        iterated."""
        full = self._key(key)
        if self.direct is not None and self.direct.takes(full):
            got = await self.direct.get(full, start=start)
            if got is not None and got.status == 416:
                got.release()
                return await self._past_the_end(key, chunk_size)
            if got is not None:
                modified = got.headers.get("Last-Modified")
                info = BlobInfo(
                    key=key,
                    size=_whole_size(
                        got.headers.get("Content-Range"), got.headers["Content-Length"]
                    ),
                    etag=got.headers.get("ETag", "").strip('"'),
                    content_type=got.headers.get("Content-Type") or guess_content_type(key),
                    modified=parse_timestamp(modified).timestamp() if modified else time.time(),
                )
                return info, _BodyChunks(_ResponseBody(got), chunk_size)
        ranged = {"Range": f"bytes={start}-"} if start else {}
        try:
            with _errors(key):
                try:
                    resp = await self.client.get_object(Bucket=self.bucket, Key=full, **ranged)
                except ClientError as exc:
                    if start and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                        return await self._past_the_end(key, chunk_size)
                    raise
        except _NoSuchBucket:
            raise BlobNotFound(key) from None
        info = BlobInfo(
            key=key,
            size=_whole_size(resp.get("ContentRange"), resp["ContentLength"]),
            etag=_etag(resp),
            content_type=str(resp.get("ContentType") or guess_content_type(key)),
            modified=_timestamp(resp.get("LastModified")),
        )
        return info, _BodyChunks(resp["Body"], chunk_size)

    async def _past_the_end(
        self, key: str, chunk_size: int
    ) -> tuple[BlobInfo, AsyncIterator[bytes]]:
        """What a read from past the blob's end gives: its info and no bytes."""
        info = await self.stat(key)
        if info is None:
            raise BlobNotFound(key)
        return info, _BodyChunks(_NoBody(), chunk_size)

    async def stat(self, key: str) -> BlobInfo | None:
        """HeadObject, or ``None``."""
        full = self._key(key)
        try:
            with _errors(key):
                resp = await self.client.head_object(Bucket=self.bucket, Key=full)
        except (BlobNotFound, _NoSuchBucket):
            return None
        return BlobInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=_etag(resp),
            content_type=str(resp.get("ContentType") or guess_content_type(key)),
            modified=_timestamp(resp.get("LastModified")),
        )

    async def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """ListObjectsV2 pages in key order. The listing carries no content type, so it is
        guessed from the key; :meth:`stat` returns the stored one."""
        check_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            with _errors():
                async for page in pages:
                    for obj in page.get("Contents", ()):
                        key = str(obj["Key"])[len(self.prefix) :]
                        yield BlobInfo(
                            key=key,
                            size=int(obj["Size"]),
                            etag=_etag(obj),
                            content_type=guess_content_type(key),
                            modified=_timestamp(obj.get("LastModified")),
                        )
        except _NoSuchBucket:
            return

    def content_etag(self) -> ContentEtag:
        """S3's ETag for a body as :meth:`put_stream` sends it (see :class:`S3Etag`)."""
        return S3Etag()

    async def ping(self) -> None:
        """HeadBucket (creating the bucket if allowed and missing)."""
        try:
            with _errors():
                await self.client.head_bucket(Bucket=self.bucket)
        except (_NoSuchBucket, BlobNotFound):
            await self.ensure_bucket()


class S3Etag:
    """The ETag S3 gives a body :meth:`S3BlobStore.put_stream` uploads: the MD5 of a body
    of up to one part, sent whole; for a larger one, sent as parts of ``PART_SIZE`` bytes
    (the last one shorter), the MD5 of the parts' MD5s, then ``-`` and the part count.
    Stores that encrypt with their own keys (SSE-KMS, SSE-C) give other ETags."""

    def __init__(self) -> None:
        self._parts: builtins.list[bytes] = []
        self._part = hashlib.md5(usedforsecurity=False)
        self._filled = 0

    def update(self, data: bytes, /) -> None:
        view = memoryview(data)
        while view:
            if self._filled == PART_SIZE:
                # A part is closed only when more bytes follow: a body of exactly one
                # part goes as one PutObject.
                self._parts.append(self._part.digest())
                self._part = hashlib.md5(usedforsecurity=False)
                self._filled = 0
            take = min(PART_SIZE - self._filled, len(view))
            self._part.update(view[:take])
            self._filled += take
            view = view[take:]

    def hexdigest(self) -> str:
        if not self._parts:
            return self._part.hexdigest()
        digests = b"".join([*self._parts, self._part.digest()])
        return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(self._parts) + 1}"


class _MultipartUpload:
    """One multipart upload with at most one part in flight."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.parts: builtins.list[dict[str, Any]] = []
        self._inflight: asyncio.Task[dict[str, Any]] | None = None

    def raise_if_failed(self) -> None:
        """Surface a failed part now rather than after reading the next 8 MiB."""
        if self._inflight is not None and self._inflight.done():
            self._inflight.result()

    async def add_part(self, body: bytes) -> None:
        """Wait for the previous part, then start uploading this one."""
        await self._settle()
        number = len(self.parts) + 1
        self._inflight = asyncio.create_task(self._upload(number, body))

    async def _settle(self) -> None:
        if self._inflight is not None:
            task, self._inflight = self._inflight, None
            self.parts.append(await task)

    async def _upload(self, number: int, body: bytes) -> dict[str, Any]:
        with _errors():
            resp = await self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
            )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    async def complete(self) -> Any:
        await self._settle()
        with _errors(self.key):
            return await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )

    async def abort(self) -> None:
        """Stop the part in flight and drop the upload. Best effort: if S3 is down, the
        bucket's lifecycle rule for incomplete uploads has to clean up."""
        if self._inflight is not None:
            task, self._inflight = self._inflight, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(BotoCoreError, ClientError, OSError, TimeoutError):
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )


class _ResponseBody:
    """An aiohttp response's body as _BodyChunks reads a botocore one."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    async def read(self, size: int) -> bytes:
        return await self._resp.content.read(size)

    def close(self) -> None:
        self._resp.release()


class _NoBody:
    """The body of a read that starts past the end."""

    async def read(self, size: int) -> bytes:
        return b""

    def close(self) -> None:
        pass


def _whole_size(content_range: str | None, length: str | int) -> int:
    """The whole object's size: a ranged answer's ``Content-Range`` (``bytes a-b/size``)
    says it; an answer of all of it, its length."""
    if content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(length)


class _BodyChunks:
    """Chunks of a GetObject body; releases the connection at the end or on ``aclose``."""

    def __init__(self, body: Any, chunk_size: int) -> None:
        self._body = body
        self._size = chunk_size
        self._closed = False

    def __aiter__(self) -> _BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            with _errors():
                data: bytes = await self._body.read(self._size)
        except BaseException:
            self._close()
            raise
        if not data:
            self._close()
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._body.close()

    def __del__(self) -> None:
        self._close()


@contextlib.contextmanager
def _errors(key: str | None = None) -> Iterator[None]:
    """Translate botocore's exceptions into categorised ones."""
    try:
        yield
    except ClientError as exc:
        _raise_client_error(exc, key)
    except _TRANSPORT as exc:
        raise BlobStoreUnavailable(f"S3 is unreachable: {exc}") from exc
    except TimeoutError as exc:
        raise BlobStoreUnavailable(f"S3 timed out: {exc!r}") from exc
    except BotoCoreError as exc:
        # Missing credentials, bad parameters: configuration, not weather.
        raise LogicError(f"S3 client error: {exc}", code="s3_client") from exc


@contextlib.contextmanager
def _parts_errors(key: str, upload_id: str) -> Iterator[None]:
    """S3's word that a multipart upload is gone (404 NoSuchUpload), or that parts named
    in its completion are not there (400 InvalidPart), as :class:`PartsLost`."""
    try:
        yield
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in _PARTS_LOST:
            raise PartsLost(key, upload_id) from exc
        raise


def _raise_client_error(exc: ClientError, key: str | None) -> NoReturn:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code == _NO_BUCKET:
        raise _NoSuchBucket(code) from exc
    if code in _NOT_FOUND or status == 404:
        if key is None and code in ("404", "NotFound"):
            # HeadBucket answers a bare 404 for a missing bucket.
            raise _NoSuchBucket(code) from exc
        raise BlobNotFound(key or "") from exc
    if status >= 500 or code in _TRANSIENT:
        raise BlobStoreUnavailable(f"S3 answered {status} {code}: {exc}") from exc
    # S3's own code stays in the message, for the log: a client sees a code of ours.
    raise LogicError(f"S3 refused the request: {status} {code}: {exc}", code="s3_refused") from exc


def _etag(resp: Any) -> str:
    return str(resp.get("ETag", "")).strip('"')


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else time.time()
