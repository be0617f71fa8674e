"""``filmstrip migrate blobs``: copy every blob into another store (files into S3), saying
what it will do, then what it did; non-zero on any conflict, mismatch or failure."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from filmstrip.blobs import BlobStore, blob_store_for_url
from filmstrip.blobs import copy as blob_copy
from filmstrip.blobs.copy import FAULTS, BlobCopyResult, BlobPlan, Outcome
from filmstrip.blobs.fs import root_of_url
from filmstrip.errors import FilmstripError
from filmstrip.settings import Settings


@dataclass(frozen=True)
class Options:
    source: str  # empty: the configured store
    target: str
    dry_run: bool = False
    overwrite: bool = False
    concurrency: int = blob_copy.CONCURRENCY


def _say(line: str = "") -> None:
    print(line, flush=True)


def _fail(message: str) -> int:
    print(f"filmstrip migrate blobs: {message}", file=sys.stderr, flush=True)
    return 1


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


async def run(settings: Settings, options: Options) -> int:
    """The command; its exit code."""
    source_url = options.source or settings.effective_blob_url
    if source_url.rstrip("/") == options.target.rstrip("/"):
        return _fail(
            "the source and the target are the same store: FILMSTRIP_BLOB_URL already names "
            "the target? give the old one with --from file:///path"
        )
    missing = _missing_source(source_url)
    if missing:
        return _fail(missing)
    source: BlobStore | None = None
    target: BlobStore | None = None
    try:
        source = await blob_store_for_url(source_url, settings)
        target = await blob_store_for_url(options.target, settings)
        return await _migrate(settings, source, target, source_url, options)
    except FilmstripError as exc:
        return _fail(str(exc))
    finally:
        for store in (target, source):
            if store is not None:
                await store.close()


def _missing_source(url: str) -> str:
    """Why a file store source cannot be copied, or ``""``: a directory that does not exist
    lists no blobs, and copying those would end in "Every blob verified" and the advice to
    point every role at a store holding none."""
    if not url.startswith("file://"):
        return ""
    try:
        root = root_of_url(url)
    except FilmstripError:
        return ""  # opening the store says what is wrong with the URL
    if root.is_dir():
        return ""
    return f"there is no store at {root} (give the old one with --from file:///path)"


async def _migrate(
    settings: Settings, source: BlobStore, target: BlobStore, source_url: str, options: Options
) -> int:
    plan = await blob_copy.inspect(source, target)
    _print_plan(settings, plan, source_url, options)
    result = await blob_copy.copy(
        plan,
        source,
        target,
        write=not options.dry_run,
        overwrite=options.overwrite,
        concurrency=options.concurrency,
        progress=_Progress(),
    )
    return _print_result(result, options)


def _print_plan(settings: Settings, plan: BlobPlan, source_url: str, options: Options) -> None:
    where = ""
    if options.target.startswith("s3://"):
        where = f" at {settings.blobs.s3_endpoint_url or 'AWS'}, region {settings.blobs.s3_region}"
    _say(f"{'DRY RUN: ' if options.dry_run else ''}copy the blobs")
    _say(f"  from {source_url} ({len(plan.source)} blobs, {_mb(plan.source_bytes)})")
    _say(f"  to   {options.target}{where} ({len(plan.target)} blobs)")
    missing = plan.missing
    size = _mb(sum(b.size for b in missing))
    _say("It will:")
    _say(
        f"  - copy the {len(missing)} blobs the target lacks ({size}), "
        f"{options.concurrency} at a time, streamed; each checked by the target's ETag "
        "against the one computed from the bytes sent, else read back and its SHA-256 compared"
    )
    if plan.same_size:
        _say(
            f"  - check the {plan.same_size} blobs the target holds at the same size (read "
            "here, compared by ETag or SHA-256): equal ones are skipped"
        )
    if plan.other_size or plan.same_size:
        act = "replace" if options.overwrite else "report, and leave (--overwrite replaces),"
        _say(f"  - {act} blobs the target holds with other content ({plan.other_size} by size)")
    if plan.target_only:
        _say(f"  - leave alone the {plan.target_only} blobs only the target has")
    _say(
        "  - only read the source. The roles should be stopped: blobs written after the "
        "listing are not copied (run the command again to copy them)"
    )


class _Progress:
    """A line every few seconds, and at the end."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, done: int, total: int, size: int, total_size: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= 2.0:
            self._last = now
            _say(f"  {done}/{total} blobs, {_mb(size)} of {_mb(total_size)}")


def _print_result(result: BlobCopyResult, options: Options) -> int:
    write = not options.dry_run
    _say("Done:" if write else "It would:")
    names = {Outcome.COPIED: "copied" if write else "to copy"}
    counts = ", ".join(f"{names.get(o, o.value)} {result.count(o)}" for o in Outcome)
    _say(f"  {counts}")
    if write:
        _say(f"  {_mb(result.bytes_copied)} copied")
    _say(f"  checked by ETag {result.checked_by_etag}, by reading back {result.checked_by_reading}")
    for outcome in (*(f for f in FAULTS if f is not Outcome.NOT_TRIED), Outcome.GONE):
        tally = result.outcomes[outcome]
        for key, detail in tally.examples:
            _say(f"{outcome.value.upper()}: {key}{': ' + detail if detail else ''}")
        if tally.count > len(tally.examples):
            _say(f"{outcome.value.upper()}: and {tally.count - len(tally.examples)} more")
    if result.count(Outcome.NOT_TRIED):
        _say(
            f"STOPPED after {blob_copy.FAILURES_IN_A_ROW} blobs failed in a row (is the store "
            f"down?): {result.count(Outcome.NOT_TRIED)} blobs not tried; run the command again "
            "to carry on"
        )
    if result.faults:
        return 1
    if write:
        _say("Every blob verified.")
        _say("Next: point every role at the new store:")
        _say(f"  FILMSTRIP_BLOB_URL={options.target}")
        if options.target.startswith("s3://"):
            _say(
                "  with the FILMSTRIP_S3_ENDPOINT_URL, _S3_REGION, _S3_ACCESS_KEY_ID and "
                "_S3_SECRET_ACCESS_KEY this command used"
            )
    return 0
