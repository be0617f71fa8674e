"""``filmstrip upload PATH…``: every photo under the paths to the api, then followed live
until processed, with progress bars (rich) and a summary.

Files are hashed first: what the client already has (``POST /v1/photos/check``) or what
appears twice in the paths is not sent again. Files that are not photos (by their bytes,
with the api's own table) are reported, not sent. Large files go through tus and their
upload URLs are kept (``filmstrip.client.ResumeStore``), so the same command run again
after Ctrl-C sends only what the server does not have yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from filmstrip.client import (
    ApiClient,
    ApiFailure,
    EventStream,
    EventStreamError,
    LocalFile,
    ResumeStore,
    inspect_file,
    upload_file,
)
from filmstrip.client.events import Gap
from filmstrip.protocols.events import PHOTO_COMPLETED, PHOTO_FAILED

# How long the processing wait goes without an event before asking the api directly, and
# how many photos it asks about then (the api's rate limit is per client).
_QUIET_S = 10.0
_ON_SERVER = "already on the server"
_POLL_BATCH = 50


@dataclass(frozen=True)
class Options:
    paths: list[Path]
    api_url: str
    token: str
    session: str | None = None
    concurrency: int = 4
    wait: bool = True
    json: bool = False
    state_dir: Path | None = None
    pipeline: str | None = None
    priority: int | None = None


class FileReport(msgspec.Struct, kw_only=True):
    """One file's outcome: ``uploaded``, ``duplicate`` or ``failed`` (with ``reason``)."""

    path: str
    outcome: str = "pending"
    photo_id: str | None = None
    reason: str | None = None
    bytes: int = 0
    resumed_at: int = 0
    processing: str | None = None  # completed / failed / deleted, once known
    processing_via: str | None = None  # "bus" (live) or "api" (asked after a quiet spell)


@dataclass
class _Run:
    options: Options
    reports: dict[Path, FileReport] = field(default_factory=dict)
    # photo id → (completed, failed or deleted, the failure's reason, "bus" or "api")
    done: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def find_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files named, and files under folders named (recursively, hidden ones skipped), in
    order, each once; and the paths that do not exist."""
    found: dict[Path, None] = {}
    missing: list[str] = []
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        found.setdefault(Path(root) / name, None)
        elif path.is_file():
            found.setdefault(path, None)
        else:
            missing.append(str(path))
    return list(found), missing


async def run(options: Options) -> int:
    """The command; its exit status (1 if any file failed)."""
    if not options.token:
        print("filmstrip upload: give a token (--token or FILMSTRIP_TOKEN)", file=sys.stderr)
        return 2
    files, missing = await asyncio.to_thread(find_files, options.paths)
    if missing:
        print(f"filmstrip upload: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    state = _Run(options, {p: FileReport(path=str(p)) for p in files})
    async with ApiClient(options.api_url, options.token) as api:
        try:
            await _upload_all(api, state, console)
        except ApiFailure as exc:
            said = str(exc)
            if exc.status == 0:  # never answered: where, why, and what to check
                said = (
                    f"{exc.message}; check that the api runs there, or name it with --api "
                    "or FILMSTRIP_API_URL"
                )
            print(f"filmstrip upload: {options.api_url}: {said}", file=sys.stderr)
            return 1
    reports = list(state.reports.values())
    if options.json:
        sys.stdout.buffer.write(msgspec.json.encode(reports) + b"\n")
    else:
        _summary(reports, Console())
    failed = [r for r in reports if r.outcome == "failed" or r.processing == "failed"]
    if options.json:  # (the summary's own table names them otherwise)
        for report in failed:
            print(f"failed: {report.path}: {report.reason}", file=sys.stderr)
    return 1 if failed else 0


async def _upload_all(api: ApiClient, state: _Run, console: Console) -> None:
    options = state.options
    session_id = options.session
    if session_id == "new":
        session_id = (await api.create_session()).session_id
        console.print(f"session {session_id}")
    with _bars(console, TextColumn("{task.percentage:>3.0f}%")) as bars:
        inspected = await _inspect(state, bars)
        photos = [f for f in inspected if f.format is not None]
        for f in inspected:
            if f.size == 0:
                _fail(state, f.path, "empty file: not sent")
            elif f.format is None:
                _fail(state, f.path, "not a photo (by its bytes): not sent")
        to_send = await _skip_duplicates(api, state, photos)

    events: asyncio.Task[None] | None = None
    if options.wait and to_send:
        connected = asyncio.Event()
        events = asyncio.create_task(_follow(api, state, console, connected))
        # Connected before the first upload, so no completion can come before it does.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), timeout=10)
    try:
        with _bars(console, DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()) as bars:
            await _send(api, state, to_send, session_id, bars)
        unfinished = await _earlier_outcomes(api, state)
        uploaded = [
            r.photo_id for r in state.reports.values() if r.outcome == "uploaded" and r.photo_id
        ]
        waiting = list(dict.fromkeys(uploaded + unfinished))
        if options.wait and waiting:
            with _bars(console, MofNCompleteColumn(), TimeRemainingColumn()) as bars:
                await _wait_processed(api, state, waiting, bars)
    finally:
        if events is not None:
            events.cancel()
            await asyncio.gather(events, return_exceptions=True)


async def _earlier_outcomes(api: ApiClient, state: _Run) -> list[str]:
    """Record how the server's copies of this run's duplicates were processed: one that
    failed fails here too, with its reason. The ids of those still being processed."""
    copies: dict[str, list[FileReport]] = {}
    for report in state.reports.values():
        # (A copy of a file sent in this run has that file's outcome.)
        if report.outcome == "duplicate" and report.photo_id and report.reason == _ON_SERVER:
            copies.setdefault(report.photo_id, []).append(report)
    if not copies:
        return []
    unfinished: list[str] = []
    for status in ("failed", "queued", "processing"):
        # A client's failed or unfinished photos are few beside its completed ones.
        async for photo in api.photos_in(status):
            for report in copies.pop(photo.photo_id, []):
                if status == "failed":
                    reason = photo.error.message if photo.error else "processing failed"
                    report.processing, report.processing_via = "failed", "api"
                    report.reason = f"{_ON_SERVER}, where processing failed: {reason}"
                elif photo.photo_id not in unfinished:
                    unfinished.append(photo.photo_id)
    for reports in copies.values():  # the rest are completed
        for report in reports:
            report.processing, report.processing_via = "completed", "api"
    return unfinished


def _bars(console: Console, *columns: ProgressColumn) -> Progress:
    """Bars that show each task's name and bar, then ``columns``."""
    return Progress(TextColumn("{task.description:>10}"), BarColumn(), *columns, console=console)


async def _inspect(state: _Run, bars: Progress) -> list[LocalFile]:
    paths = list(state.reports)
    task = bars.add_task("hashing", total=len(paths))
    limit = asyncio.Semaphore(max(2, os.cpu_count() or 2))

    async def one(path: Path) -> LocalFile | None:
        async with limit:
            try:
                return await asyncio.to_thread(inspect_file, path)
            except OSError as exc:
                _fail(state, path, f"cannot read it: {exc.strerror or exc}")
                return None
            finally:
                bars.advance(task)

    found = await asyncio.gather(*(one(p) for p in paths))
    return [f for f in found if f is not None]


async def _skip_duplicates(api: ApiClient, state: _Run, photos: list[LocalFile]) -> list[LocalFile]:
    """The photos to send: not on the server yet, each content once."""
    existing = await api.existing(f.sha256 for f in photos if f.sha256)
    resume = ResumeStore(state.options.state_dir)
    first: dict[str, LocalFile] = {}
    to_send = []
    for f in photos:
        assert f.sha256 is not None
        report = state.reports[f.path]
        report.bytes = f.size
        if f.sha256 in existing:
            report.outcome, report.photo_id = "duplicate", existing[f.sha256]
            report.reason = _ON_SERVER
            await resume.drop(api.url, f.sha256)  # a run cut after its last byte left one
        elif f.sha256 in first:
            report.outcome = "duplicate"
            report.reason = f"same bytes as {first[f.sha256].path}"
        else:
            first[f.sha256] = f
            to_send.append(f)
    return to_send


async def _send(
    api: ApiClient, state: _Run, files: list[LocalFile], session_id: str | None, bars: Progress
) -> None:
    total = bars.add_task("uploading", total=sum(f.size for f in files))
    limit = asyncio.Semaphore(max(1, state.options.concurrency))
    resume = ResumeStore(state.options.state_dir)

    async def one(f: LocalFile) -> None:
        report = state.reports[f.path]
        sent = 0

        def progress(done: int) -> None:
            nonlocal sent
            bars.advance(total, done - sent)
            sent = done

        async with limit:
            try:
                result = await upload_file(
                    api,
                    f,
                    session_id=session_id,
                    resume=resume,
                    progress=progress,
                    pipeline=state.options.pipeline,
                    priority=state.options.priority,
                )
            except ApiFailure as exc:
                bars.advance(total, f.size - sent)
                _fail(state, f.path, str(exc))
                return
        report.photo_id = result.photo_id
        report.resumed_at = result.resumed_at
        report.outcome = "duplicate" if result.duplicate else "uploaded"
        if result.duplicate:
            report.reason = _ON_SERVER

    await asyncio.gather(*(one(f) for f in files))
    # A second copy of a file sent in this run is a duplicate of that photo.
    by_content = {r.path: r.photo_id for r in state.reports.values()}
    for report in state.reports.values():
        if report.reason and report.reason.startswith("same bytes as "):
            report.photo_id = by_content.get(report.reason.removeprefix("same bytes as "))


async def _follow(api: ApiClient, state: _Run, console: Console, connected: asyncio.Event) -> None:
    """Record every photo's completion or failure from the bus as it comes."""
    try:
        bus_url = (await api.config()).bus_url
        async with EventStream(bus_url, api.token) as events:
            await events.connect()
            connected.set()
            async for item in events:
                if isinstance(item, Gap):
                    state.changed.set()  # the wait asks the api about the rest
                elif item.event == PHOTO_COMPLETED:
                    state.done[item.photo_id] = ("completed", None, "bus")
                    state.changed.set()
                elif item.event == PHOTO_FAILED:
                    error = item.data.get("error") or {}
                    reason = str(error.get("message") or "processing failed")
                    state.done[item.photo_id] = ("failed", reason, "bus")
                    state.changed.set()
    except (ApiFailure, EventStreamError) as exc:
        console.print(f"live progress unavailable ({exc}); asking the api instead")
    finally:
        connected.set()


async def _wait_processed(
    api: ApiClient, state: _Run, photo_ids: list[str], bars: Progress
) -> None:
    """Until every uploaded photo is processed (or failed), as the bus says; after a quiet
    spell, ask the api about the ones still pending."""
    task = bars.add_task("processing", total=len(photo_ids))
    pending = set(photo_ids)
    quiet_since = time.monotonic()
    while pending:
        for photo_id in [p for p in pending if p in state.done]:
            pending.discard(photo_id)
            bars.advance(task)
            quiet_since = time.monotonic()
        if not pending:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.changed.wait(), timeout=1.0)
        state.changed.clear()
        if time.monotonic() - quiet_since > _QUIET_S:
            for photo_id in sorted(pending)[:_POLL_BATCH]:
                try:
                    photo = await api.photo(photo_id)
                except ApiFailure as exc:
                    if exc.status != 404:
                        raise
                    # Deleted meanwhile (from the gallery, another device): nothing more
                    # will come of it, and the rest of the run still gets its summary.
                    state.done[photo_id] = ("deleted", None, "api")
                    continue
                if photo.status in ("completed", "failed"):
                    reason = photo.error.message if photo.error else None
                    state.done[photo_id] = (photo.status, reason, "api")
            quiet_since = time.monotonic()
    for report in state.reports.values():
        if report.photo_id in state.done and report.processing is None:
            report.processing, reason, report.processing_via = state.done[report.photo_id]
            if report.processing == "failed":
                report.reason = f"processing failed: {reason}"


def _fail(state: _Run, path: Path, reason: str) -> None:
    report = state.reports[path]
    report.outcome, report.reason = "failed", reason


def _summary(reports: list[FileReport], console: Console) -> None:
    counts = Table(title="filmstrip upload", show_header=True)
    for column in ("uploaded", "duplicate", "failed", "processed"):
        counts.add_column(column, justify="right")
    failed = [r for r in reports if r.outcome == "failed" or r.processing == "failed"]
    counts.add_row(
        str(sum(r.outcome == "uploaded" for r in reports)),
        str(sum(r.outcome == "duplicate" for r in reports)),
        str(len(failed)),
        str(sum(r.processing == "completed" for r in reports)),
    )
    console.print(counts)
    if failed:
        table = Table(title="failed", show_header=True)
        table.add_column("file", overflow="fold")
        table.add_column("reason", overflow="fold")
        for report in failed:
            table.add_row(report.path, report.reason or "")
        console.print(table)
