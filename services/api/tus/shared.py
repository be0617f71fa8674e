"""Partial tus uploads in the shared stores (an S3 blob store): state in the catalog
(``filmstrip/catalog/tus.py``), bytes in the bucket, so a PATCH may reach any api process on
any host and go on exactly at the committed offset.

The bytes of upload ``<id>`` are a multipart upload to ``uploads/<id>/data`` whose parts
(``part_size`` each, at least 5 MiB) hold everything up to the last part boundary, then the
tail: small objects ``uploads/<id>/tail-<random>``, one per PATCH, holding what followed
(less than a part between them). A PATCH writes only its own bytes: the full parts it can
make (reading the tail back once its bytes and the tail fill one), and what is left as one
more tail object when its body ends (finished or cut: tus keeps what arrived); then one
commit in the catalog records the parts, the tail and the offset. So clients that send
small chunks (mobile SDKs send 0.5-2 MB) cost each byte about three transfers, not one per
PATCH until a part fills; a tail grown past ``MAX_SEGMENTS`` objects is folded into one.
Nothing is shown before S3 holds it. Tail objects are never overwritten (a fresh key each
time) and part numbers never handed out twice, so a writer whose lease lapsed (its host
cut off mid-PATCH) cannot spoil what its successor recorded; its commit, fenced by the
lease, changes nothing.

Once complete, the tail becomes the last part and the parts are joined into
``uploads/<id>/data`` (an upload that never filled a part is its tail, joined in one PUT);
the routes stream that object into the photo's original and hash it on the way, so the
SHA-256 of the whole upload (for dedupe) is right whichever hosts its PATCHes reached. The
first bytes, which decide the type, are kept in the row: parts of an unfinished multipart
upload cannot be read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator

import msgspec

from filmstrip.blobs import BlobNotFound
from filmstrip.blobs.s3 import PART_SIZE, PartsLost, S3BlobStore
from filmstrip.blobs.validation import is_valid_key
from filmstrip.catalog import Catalog
from filmstrip.catalog.tus import Part, Segment, TusRow, TusUploads
from filmstrip.concurrency import run_blocking
from filmstrip.errors import FilmstripError
from filmstrip.protocols.formats import SNIFF_BYTES
from filmstrip.services.api.tus.protocol import CHECKSUM_ALGORITHMS
from filmstrip.services.api.tus.store import (
    Admission,
    ChecksumMismatch,
    OpenUploads,
    TooMuchData,
    TusStore,
    TusUpload,
    UploadBroken,
    UploadGone,
    UploadLocked,
)
from filmstrip.tasks import cancel_and_wait

log = logging.getLogger("filmstrip.api.tus")

_ID = re.compile(r"^[0-9a-f]{32}$")
_PREFIX = "uploads/"
_OCTETS = "application/octet-stream"
_MIB = 1024 * 1024
# S3 allows 10,000 parts; a part number is never reused (see above), so a PATCH whose
# checksum failed spends some. Parts grow past PART_SIZE for uploads that would otherwise
# need more than half of them.
MAX_PARTS = 10_000
# A PATCH's lease lasts this long unless renewed (every third of it, while the body
# streams): how long an api process that died mid-PATCH keeps the upload from others.
LEASE_S = 15.0
_POLL_S = 0.1
# A tail of more objects than this is folded into one by the next PATCH, so that joining
# it into a part never reads thousands of small objects.
MAX_SEGMENTS = 32


def part_size_for(length: int) -> int:
    """The part size of an upload of ``length`` bytes: PART_SIZE, or whole MiB enough to
    leave half the part numbers spare."""
    needed = -(-length // (MAX_PARTS // 2))
    return max(PART_SIZE, -(-needed // _MIB) * _MIB)


def data_key(upload_id: str) -> str:
    """Where the upload's parts are joined."""
    return f"{_PREFIX}{upload_id}/data"


def _upload(row: TusRow) -> TusUpload:
    return msgspec.convert(row, TusUpload, from_attributes=True)


class SharedTusStore(TusStore):
    """Uploads in the catalog and an S3 bucket, shared by every api process."""

    def __init__(
        self,
        catalog: Catalog,
        blobs: S3BlobStore,
        *,
        lock_wait_s: float = 5.0,
        lease_s: float = LEASE_S,
    ) -> None:
        self.catalog = catalog
        self.rows = TusUploads(catalog)
        self.blobs = blobs
        self.lock_wait_s = lock_wait_s
        self.lease_s = lease_s
        # Upload id → the owner token of the lease this process holds on it.
        self._leases: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------------

    async def create(
        self,
        *,
        client_id: str,
        length: int,
        metadata: dict[str, str],
        ttl_s: float,
        admit: Admission | None = None,
    ) -> TusUpload:
        """See :meth:`TusStore.create`; the client's row is locked while it counts."""

        def admit_counts(count: int, total: int) -> None:
            if admit is not None:
                admit(OpenUploads(count=count, bytes=total))

        row = await self.rows.create(
            upload_id=uuid.uuid4().hex,
            client_id=client_id,
            length=length,
            metadata=metadata,
            part_size=part_size_for(length),
            ttl_s=ttl_s,
            admit=admit_counts if admit is not None else None,
        )
        return _upload(row)

    async def get(self, upload_id: str) -> TusUpload | None:
        row = await self._row(upload_id)
        return _upload(row) if row is not None else None

    async def _row(self, upload_id: str) -> TusRow | None:
        if not _ID.match(upload_id):
            return None
        return await self.rows.get(upload_id)

    async def save(self, upload: TusUpload) -> None:
        await self._commit(
            upload.id,
            content_type=upload.content_type,
            photo_id=upload.photo_id,
            duplicate=upload.duplicate,
        )

    async def delete(self, upload_id: str) -> None:
        row = await self._row(upload_id)
        if row is None:
            return
        # The bytes first: a row without bytes reads as gone, bytes without a row would
        # wait for the sweeper.
        await self._discard(row)
        await self.rows.delete(upload_id)

    async def drop_data(self, upload: TusUpload) -> None:
        row = await self._row(upload.id)
        if row is None:
            return
        await self._discard(row)
        await self._commit(upload.id, multipart_id=None, parts=[], tail=[], data_key=None)

    async def _discard(self, row: TusRow) -> None:
        """Abort the multipart upload and delete every object of the upload."""
        if row.multipart_id is not None:
            await self.blobs.abort_parts(data_key(row.id), row.multipart_id)
        await self.blobs.delete_prefix(f"{_PREFIX}{row.id}/")

    async def _commit(
        self,
        upload_id: str,
        *,
        offset: int | None = None,
        ttl_s: float | None = None,
        **changes: object,
    ) -> TusRow:
        """A fenced commit under this process's lease; :class:`UploadLocked` if the lease
        was lost (another process took the upload over), having changed nothing."""
        owner = self._leases.get(upload_id)
        row = None
        if owner is not None:
            row = await self.rows.commit(upload_id, owner, offset=offset, ttl_s=ttl_s, **changes)
        if row is None:
            raise UploadLocked(upload_id)
        return row

    # --- one writer at a time ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: str) -> AsyncIterator[None]:
        """Hold the upload's lease (renewed while held); waits a little for a holder to
        finish, as a client resuming right after its connection dropped may arrive before
        the old request has noticed."""
        if not _ID.match(upload_id):
            raise UploadGone(upload_id)
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            taken = await self.rows.lease(upload_id, owner, self.lease_s)
            if taken is None:
                raise UploadGone(upload_id)
            if taken:
                break
            if time.monotonic() > deadline:
                raise UploadLocked(upload_id)
            await asyncio.sleep(_POLL_S)
        self._leases[upload_id] = owner
        keeper = asyncio.create_task(self._keep(upload_id, owner))
        try:
            yield
        finally:
            await cancel_and_wait(keeper)
            self._leases.pop(upload_id, None)
            try:
                await self.rows.release(upload_id, owner)
            except FilmstripError as exc:
                log.warning("could not release upload %s (it lapses): %s", upload_id, exc)

    async def _keep(self, upload_id: str, owner: str) -> None:
        """Renew the lease every third of its life until cancelled; a lease found taken
        is dropped here, and the holder's next commit fails."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.rows.renew(upload_id, owner, self.lease_s):
                    log.warning("lost the lease of upload %s", upload_id)
                    if self._leases.get(upload_id) == owner:
                        del self._leases[upload_id]
                    return
            except FilmstripError as exc:
                log.warning("could not renew the lease of upload %s: %s", upload_id, exc)

    # --- bytes -------------------------------------------------------------------------

    async def append(
        self,
        upload: TusUpload,
        body: AsyncIterator[bytes],
        *,
        ttl_s: float,
        checksum: tuple[str, bytes] | None = None,
    ) -> tuple[TusUpload, BaseException | None]:
        """See :meth:`TusStore.append`: full parts go to S3 as the body streams, the rest
        to one more tail object when it ends, then one fenced commit records them."""
        row = await self._row(upload.id)
        if row is None:
            raise UploadGone(upload.id)
        if upload.id not in self._leases:
            raise UploadLocked(upload.id)  # the lease lapsed: another request may have it
        tail = list(row.tail)
        held = sum(segment.size for segment in tail)  # bytes in the tail
        buf = bytearray()  # this PATCH's bytes not yet in a part
        head = bytearray()  # the first bytes of this PATCH, for the row's head
        multipart_id = row.multipart_id
        parts: list[Part] = list(row.parts)
        spent: list[Segment] = []  # tail objects whose bytes went into a part or a fold
        fresh: list[str] = []  # objects written by this PATCH, to drop if it fails
        hasher = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        received = 0
        cut: BaseException | None = None
        chunks = aiter(body)
        try:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the client went away or stalled: keep what arrived
                    cut = exc
                    break
                if row.offset + received + len(chunk) > row.length:
                    raise TooMuchData(row.length)
                if hasher is not None:
                    hasher.update(chunk)
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                buf += chunk
                received += len(chunk)
                if tail and held + len(buf) >= row.part_size:
                    # The tail and these bytes fill a part: it goes first.
                    buf[:0] = await self._read_tail(row.id, tail)
                    spent += tail
                    tail, held = [], 0
                while len(buf) >= row.part_size:
                    if multipart_id is None:
                        multipart_id = await self._start_parts(row)
                    part = bytes(buf[: row.part_size])
                    parts.append(await self._put_part(row, multipart_id, part))
                    del buf[: row.part_size]
            if checksum is not None and hasher is not None:
                if cut is not None:
                    received = 0  # unverifiable: keep nothing of it
                elif hasher.digest() != checksum[1]:
                    raise ChecksumMismatch()
            if not received:
                return upload, cut
            if len(tail) >= MAX_SEGMENTS:
                buf[:0] = await self._read_tail(row.id, tail)
                spent += tail
                tail = []
            if buf:
                key = f"{_PREFIX}{row.id}/tail-{secrets.token_hex(8)}"
                fresh.append(key)
                await self.blobs.put_bytes(key, bytes(buf), content_type=_OCTETS)
                tail.append(Segment(key, len(buf)))
            committed = await self._commit(
                row.id,
                offset=row.offset + received,
                ttl_s=ttl_s,
                # While the upload is under SNIFF_BYTES long, the head is all of it.
                head=(row.head + head)[:SNIFF_BYTES],
                parts=parts,
                tail=tail,
            )
            fresh.clear()
        except BaseException:
            # Shielded: what this PATCH wrote and did not commit must not outlive it.
            await asyncio.shield(self._drop_quietly(fresh))
            raise
        await self._drop_quietly([segment.key for segment in spent])
        upload.offset = committed.offset
        upload.expires_at = committed.expires_at
        return upload, cut

    async def _read_tail(self, upload_id: str, tail: list[Segment]) -> bytes:
        """The tail's bytes, each object exactly the size recorded."""
        data = bytearray()
        for segment in tail:
            try:
                piece = await self.blobs.get_bytes(segment.key)
            except BlobNotFound:
                raise await self._tail_missing(upload_id, segment) from None
            if len(piece) != segment.size:
                raise UploadBroken(f"upload {upload_id} lost bytes", code="upload_truncated")
            data += piece
        return bytes(data)

    async def _tail_missing(self, upload_id: str, segment: Segment) -> FilmstripError:
        """Why a tail object the row named is not there: the upload was deleted, or another
        process took it over and folded its tail (this one's lease lapsed), or, with the row
        still naming it, its bytes were lost."""
        row = await self._row(upload_id)
        if row is None:
            return UploadGone(upload_id)
        if segment not in row.tail:
            return UploadLocked(upload_id)
        return UploadBroken(f"upload {upload_id} lost {segment.key!r}", code="upload_truncated")

    async def _start_parts(self, row: TusRow) -> str:
        """Open the upload's multipart upload and record it at once (fenced), so that no
        crash leaves one that nothing refers to (but for the sweeper's listing)."""
        multipart_id = await self.blobs.create_parts(data_key(row.id), content_type=_OCTETS)
        try:
            await self._commit(row.id, multipart_id=multipart_id)
        except BaseException:
            await asyncio.shield(self.blobs.abort_parts(data_key(row.id), multipart_id))
            raise
        return multipart_id

    async def _put_part(self, row: TusRow, multipart_id: str, data: bytes) -> Part:
        owner = self._leases.get(row.id)
        number = await self.rows.reserve_part(row.id, owner) if owner is not None else None
        if number is None:
            raise UploadLocked(row.id)
        if number > MAX_PARTS:
            raise UploadBroken(
                f"upload {row.id} has used all {MAX_PARTS} part numbers; start it again",
                code="too_many_parts",
            )
        try:
            etag = await self.blobs.put_part(data_key(row.id), multipart_id, number, data)
        except PartsLost:
            raise await self._parts_missing(row.id, multipart_id) from None
        return Part(number, etag, len(data))

    async def _parts_missing(self, upload_id: str, multipart_id: str) -> FilmstripError:
        """Why S3 no longer has the multipart upload: the upload was deleted, or another
        process holds it now (it may have joined the parts), or, with the row still naming
        it under this process's lease, S3 lost it (a lifecycle rule or a hand aborted it)."""
        row = await self._row(upload_id)
        if row is None:
            return UploadGone(upload_id)
        owner = self._leases.get(upload_id)
        if owner is None or row.lease_owner != owner or row.multipart_id != multipart_id:
            return UploadLocked(upload_id)
        return UploadBroken(
            f"upload {upload_id} lost its multipart upload {multipart_id!r}",
            code="upload_parts_lost",
        )

    async def _drop_quietly(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.blobs.delete(key)
            except FilmstripError as exc:
                log.warning("could not delete %s (the sweeper will): %s", key, exc)

    async def read_head(self, upload: TusUpload, size: int) -> bytes:
        if size > SNIFF_BYTES:
            raise ValueError(f"only the first {SNIFF_BYTES} bytes are kept")
        row = await self._row(upload.id)
        return row.head[:size] if row is not None else b""

    async def iter_bytes(
        self, upload: TusUpload, digest: hashlib._Hash, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[bytes]:
        """The complete upload, joined into one object first (lock held)."""
        row = await self._row(upload.id)
        if row is None:
            raise UploadGone(upload.id)
        key = await self._assemble(row, upload.content_type or "application/octet-stream")
        _info, chunks = await self.blobs.open_stream(key, chunk_size=chunk_size)
        total = 0
        async for chunk in chunks:
            # hashlib lets go of the GIL for large buffers: hashed beside the loop.
            await run_blocking(digest.update, chunk)
            total += len(chunk)
            yield chunk
        if total != row.length:
            raise UploadBroken(f"upload {row.id} lost bytes", code="upload_truncated")

    async def _assemble(self, row: TusRow, content_type: str) -> str:
        """The key of one object holding the whole upload, made once."""
        if row.data_key is not None:
            return row.data_key
        if row.offset != row.length:
            raise UploadBroken(f"upload {row.id} is not complete", code="upload_incomplete")
        key = data_key(row.id)
        if row.multipart_id is None and len(row.tail) == 1:
            key = row.tail[0].key  # it never filled a part, and came in one PATCH
        elif row.multipart_id is None:
            tail = await self._read_tail(row.id, row.tail)
            await self.blobs.put_bytes(key, tail, content_type=content_type)
        else:
            parts = list(row.parts)
            if row.tail:
                tail = await self._read_tail(row.id, row.tail)
                parts.append(await self._put_part(row, row.multipart_id, tail))
            try:
                await self.blobs.complete_parts(
                    key,
                    row.multipart_id,
                    [(p.number, p.etag) for p in parts],
                    content_type=content_type,
                )
            except PartsLost:
                raise await self._parts_missing(row.id, row.multipart_id) from None
        await self._commit(row.id, multipart_id=None, parts=[], tail=[], data_key=key)
        await self._drop_quietly([s.key for s in row.tail if s.key != key])
        return key

    # --- expiry ------------------------------------------------------------------------

    async def sweep(self, *, after_s: float = 0.0, stale_s: float = 3600.0) -> int:
        """Expired uploads (by the database's clock) go with their multipart upload and
        objects; then objects and multipart uploads under ``uploads/`` older than
        ``stale_s`` whose upload has no row (a crash between writing and recording)."""
        removed = 0
        for row in await self.rows.expired(after_s=after_s):
            owner = secrets.token_hex(16)
            # Claimed like a PATCH would be: one that just took it goes on undisturbed.
            if not await self.rows.claim_expired(row.id, owner, self.lease_s, after_s=after_s):
                continue
            await self._discard(row)
            if await self.rows.delete(row.id, owner):
                removed += 1
        cutoff = await self.catalog.now_s() + after_s - stale_s
        await self._sweep_leftovers(cutoff)
        return removed

    async def _sweep_leftovers(self, cutoff: float) -> None:
        objects: dict[str, list[str]] = {}
        async for info in self.blobs.list(_PREFIX):
            if info.modified < cutoff and _nameable(info.key):
                objects.setdefault(info.key.split("/")[1], []).append(info.key)
        multiparts: dict[str, list[tuple[str, str]]] = {}
        async for key, multipart_id, started in self.blobs.list_parts_uploads(_PREFIX):
            if started < cutoff and _nameable(key):
                multiparts.setdefault(key.split("/")[1], []).append((key, multipart_id))
        present = await self.rows.present([*objects, *multiparts])
        for upload_id, keys in objects.items():
            if upload_id not in present:
                await self._drop_quietly(keys)
        for upload_id, uploads in multiparts.items():
            if upload_id not in present:
                for key, multipart_id in uploads:
                    await self.blobs.abort_parts(key, multipart_id)


def _nameable(key: str) -> bool:
    """Whether the sweep can name ``key``; one put there by another tool or by hand (a NUL,
    a backslash) is left, said once, so that it does not stop the sweep of the others."""
    if is_valid_key(key):
        return True
    log.warning("leftover %r under uploads/ has a key the blob store refuses; left", key)
    return False
