"""Copying every blob of one store into another (files into S3, when moving up from
``filmstrip dev``), each checked against the bytes read from the source.

Each blob streams from the source to the target (a part or two in memory, never the
whole blob) through SHA-256 and the hasher of the ETag the target gives that content
(:meth:`~filmstrip.blobs.base.BlobStore.content_etag`): S3's MD5, or for a multipart
upload the MD5 of the parts' MD5s, which we can compute because we cut the parts. What
is trusted: an ETag the target computed from the bytes it received that equals the one
computed here from the bytes sent; where it differs (a store that encrypts with its own
keys, an S3 clone with other ETags) the blob is read back and its SHA-256 compared. The
source's own record is checked on the way: a file whose SHA-256 is not the one its
sidecar recorded when it was written is reported, not copied.

A blob the target already holds is skipped when equal and reported as a conflict when
not (replaced only when asked), so a second run after a cut copies only what is missing.
The source is only read.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from filmstrip.blobs.base import BlobInfo, BlobNotFound, BlobStore, ContentEtag
from filmstrip.errors import TemporaryError

# progress(blobs done, blobs in all, bytes done, bytes in all)
Progress = Callable[[int, int, int, int], None]

CONCURRENCY = 4
ATTEMPTS = 3
RETRY_DELAY_S = 0.5
# Blobs failing one after another: a store that is down, not one bad blob. The run stops
# rather than spend attempts on every blob left; the next run carries on from there.
FAILURES_IN_A_ROW = 3
# Keys kept for the report, per outcome.
EXAMPLES = 20


class Outcome(enum.StrEnum):
    COPIED = "copied"  # (in a dry run: to copy)
    PRESENT = "present"  # already in the target, equal
    CONFLICT = "conflict"  # in the target with other content: left alone
    REPLACED = "replaced"  # a conflict overwritten, as asked
    MISMATCH = "mismatch"  # copied, but the target's bytes are not the source's
    SOURCE_CORRUPT = "source_corrupt"  # the source file does not match its recorded SHA-256
    GONE = "gone"  # deleted from the source since the listing
    FAILED = "failed"  # the stores kept failing
    NOT_TRIED = "not_tried"  # left for the next run: the run stopped on failures in a row


FAULTS = (
    Outcome.CONFLICT,
    Outcome.MISMATCH,
    Outcome.SOURCE_CORRUPT,
    Outcome.FAILED,
    Outcome.NOT_TRIED,
)


@dataclass
class BlobPlan:
    """Both listings, compared by key and size only (nothing read yet)."""

    source: list[BlobInfo]
    target: dict[str, BlobInfo]

    @property
    def source_bytes(self) -> int:
        return sum(b.size for b in self.source)

    @property
    def missing(self) -> list[BlobInfo]:
        return [b for b in self.source if b.key not in self.target]

    @property
    def same_size(self) -> int:
        """Blobs the target holds at the same size: equal unless their hashes differ."""
        return sum(1 for b in self.source if b.key in self.target and self._size(b) == b.size)

    @property
    def other_size(self) -> int:
        return sum(1 for b in self.source if b.key in self.target and self._size(b) != b.size)

    @property
    def target_only(self) -> int:
        return len(self.target.keys() - {b.key for b in self.source})

    def _size(self, blob: BlobInfo) -> int:
        return self.target[blob.key].size


@dataclass
class Tally:
    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (key, detail)


@dataclass
class BlobCopyResult:
    outcomes: dict[Outcome, Tally] = field(default_factory=lambda: {o: Tally() for o in Outcome})
    bytes_copied: int = 0
    checked_by_etag: int = 0
    checked_by_reading: int = 0

    def note(self, outcome: Outcome, key: str, detail: str = "") -> None:
        tally = self.outcomes[outcome]
        tally.count += 1
        if len(tally.examples) < EXAMPLES:
            tally.examples.append((key, detail))

    def count(self, outcome: Outcome) -> int:
        return self.outcomes[outcome].count

    @property
    def faults(self) -> int:
        return sum(self.count(o) for o in FAULTS)


class _Digests:
    """SHA-256 and the target's ETag over the same bytes."""

    def __init__(self, etag: ContentEtag | None) -> None:
        self.sha256 = hashlib.sha256()
        self.etag = etag
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self.etag is not None:
            self.etag.update(data)
        self.size += len(data)


async def inspect(source: BlobStore, target: BlobStore) -> BlobPlan:
    """List both stores."""
    listed = [info async for info in source.list()]
    present = {info.key: info async for info in target.list()}
    return BlobPlan(listed, present)


async def copy(
    plan: BlobPlan,
    source: BlobStore,
    target: BlobStore,
    *,
    write: bool = True,
    overwrite: bool = False,
    concurrency: int = CONCURRENCY,
    progress: Progress | None = None,
) -> BlobCopyResult:
    """Copy each blob of ``plan`` that the target lacks, ``concurrency`` at a time, and
    check those it has. Without ``write``, only check and count. ``overwrite`` replaces
    a target blob whose content differs."""
    result = BlobCopyResult()
    queue = deque(plan.source)
    total_bytes = plan.source_bytes
    done = [0, 0]
    failing = [0]  # blobs failed since the last one that did not

    async def worker() -> None:
        while queue:
            info = queue.popleft()
            copier = _BlobCopy(source, target, info, result, write=write)
            outcome = await copier.run(plan.target.get(info.key), overwrite=overwrite)
            failing[0] = failing[0] + 1 if outcome is Outcome.FAILED else 0
            if failing[0] >= FAILURES_IN_A_ROW:
                while queue:
                    result.note(Outcome.NOT_TRIED, queue.popleft().key)
            done[0] += 1
            done[1] += info.size
            if progress is not None:
                progress(done[0], len(plan.source), done[1], total_bytes)

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(concurrency, len(queue)))):
            group.create_task(worker())
    return result


class _BlobCopy:
    """One blob: compare with what the target holds, copy it if missing, check the copy."""

    def __init__(
        self,
        source: BlobStore,
        target: BlobStore,
        listed: BlobInfo,
        result: BlobCopyResult,
        *,
        write: bool,
    ) -> None:
        self.source = source
        self.target = target
        self.listed = listed
        self.key = listed.key
        self.result = result
        self.write = write

    async def run(self, existing: BlobInfo | None, *, overwrite: bool) -> Outcome:
        """Retry what a store failed for a moment; report what kept failing."""
        attempt = 1
        while True:
            try:
                outcome, detail = await self._once(existing, overwrite=overwrite)
            except BlobNotFound as exc:
                if exc.key != self.key:
                    raise
                outcome, detail = Outcome.GONE, ""
            except TemporaryError as exc:
                if attempt < ATTEMPTS:
                    await asyncio.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
                    attempt += 1
                    continue
                outcome, detail = Outcome.FAILED, str(exc)
            self.result.note(outcome, self.key, detail)
            return outcome

    async def _once(self, existing: BlobInfo | None, *, overwrite: bool) -> tuple[Outcome, str]:
        if existing is not None:
            outcome, detail = await self._compare(existing)
            if outcome is not Outcome.CONFLICT or not (overwrite and self.write):
                return outcome, detail
            if existing.size != self.listed.size:
                # Told apart by size alone, so the source was not read: read it now, or a
                # rotten source would be found only after its copy replaced the target's.
                corrupt = _source_corrupt(*await self._read_source())
                if corrupt:
                    return Outcome.SOURCE_CORRUPT, corrupt
            outcome, detail = await self._upload()
            return (Outcome.REPLACED, detail) if outcome is Outcome.COPIED else (outcome, detail)
        if not self.write:
            return Outcome.COPIED, ""
        return await self._upload()

    async def _compare(self, existing: BlobInfo) -> tuple[Outcome, str]:
        """Read the source through the hashes and compare with the target's blob."""
        if existing.size != self.listed.size:
            size = self.listed.size
            return Outcome.CONFLICT, f"{existing.size} bytes in the target, {size} in the source"
        info, digests = await self._read_source()
        corrupt = _source_corrupt(info, digests)
        if corrupt:
            return Outcome.SOURCE_CORRUPT, corrupt
        if await self._equal(existing.etag, digests):
            return Outcome.PRESENT, ""
        return Outcome.CONFLICT, "same size, other content"

    async def _read_source(self) -> tuple[BlobInfo, _Digests]:
        """Read the source blob through the hashes."""
        info, chunks = await self.source.open_stream(self.key)
        digests = _Digests(self.target.content_etag())
        async for _ in _hashed(chunks, digests):
            pass
        return info, digests

    async def _upload(self) -> tuple[Outcome, str]:
        info, chunks = await self.source.open_stream(self.key)
        digests = _Digests(self.target.content_etag())
        stored = await self.target.put_stream(
            self.key, _hashed(chunks, digests), content_type=info.content_type
        )
        corrupt = _source_corrupt(info, digests)
        if corrupt:
            await self.target.delete(self.key)
            return Outcome.SOURCE_CORRUPT, corrupt
        if not await self._equal(stored.etag, digests):
            # Ours to remove: written by this run, and wrong; the next run copies it again.
            await self.target.delete(self.key)
            return Outcome.MISMATCH, "the target's bytes differ from those sent"
        self.result.bytes_copied += digests.size
        return Outcome.COPIED, ""

    async def _equal(self, etag: str, digests: _Digests) -> bool:
        """Whether the target's blob is the content ``digests`` saw: by its ETag when that
        is the one computed here, else by reading it back."""
        if digests.etag is not None and etag == digests.etag.hexdigest():
            self.result.checked_by_etag += 1
            return True
        try:
            _, chunks = await self.target.open_stream(self.key)
        except BlobNotFound:
            return False  # gone from the target since it was listed or written
        back = _Digests(None)
        async for _ in _hashed(chunks, back):
            pass
        self.result.checked_by_reading += 1
        return back.sha256.digest() == digests.sha256.digest()


async def _hashed(chunks: AsyncIterator[bytes], digests: _Digests) -> AsyncIterator[bytes]:
    """``chunks``, each hashed on a thread on the way past (hashing 1 GB takes seconds)."""
    async for chunk in chunks:
        await asyncio.to_thread(digests.update, chunk)
        yield chunk


def _source_corrupt(info: BlobInfo, digests: _Digests) -> str:
    """Why the bytes read are not the blob the source recorded, or ``""``. A file store's
    ETag is the SHA-256 its sidecar recorded when the blob was written."""
    recorded = info.etag
    if len(recorded) != 64 or recorded.strip("0123456789abcdef"):
        return ""  # not a SHA-256 (a file without its sidecar, another kind of store)
    actual = digests.sha256.hexdigest()
    if actual == recorded:
        return ""
    return f"the source reads as SHA-256 {actual}, recorded as {recorded}"
