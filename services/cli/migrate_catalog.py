"""``filmstrip migrate catalog``: copy the catalog into another (SQLite into PostgreSQL),
saying what it will do, then what it did; non-zero on any refusal, conflict or mismatch."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filmstrip.catalog import Catalog, catalog_for_url
from filmstrip.catalog import copy as catalog_copy
from filmstrip.catalog.copy import Key, Plan, TableResult
from filmstrip.catalog.migrations import LATEST
from filmstrip.errors import FilmstripError
from filmstrip.settings import Settings, database_backend, redacted_url, sqlite_path


@dataclass(frozen=True)
class Options:
    source: str  # empty: the configured catalog
    target: str
    dry_run: bool = False
    overwrite: bool = False
    allow_extra: bool = False
    batch_rows: int = catalog_copy.BATCH_ROWS


def _say(line: str = "") -> None:
    print(line, flush=True)


def _fail(message: str) -> int:
    print(f"filmstrip migrate catalog: {message}", file=sys.stderr, flush=True)
    return 1


def _bad_urls(source_url: str, target_url: str) -> str:
    """Why the command cannot start with these URLs, or ``""``."""
    for flag, url in (("--to", target_url), ("--from", source_url)):
        if database_backend(url) is None:
            return f"{flag} {redacted_url(url)!r} is not a sqlite:/// or postgresql:// URL"
    if source_url == target_url:
        return (
            "the source and the target are the same catalog: FILMSTRIP_DATABASE_URL already "
            "names the target? give the old one with --from sqlite:///path"
        )
    if database_backend(source_url) == "sqlite" and not Path(sqlite_path(source_url)).is_file():
        return f"there is no catalog at {sqlite_path(source_url)} (give --from sqlite:///path)"
    return ""


async def run(settings: Settings, options: Options) -> int:
    """The command; its exit code."""
    source_url = options.source or settings.effective_database_url
    bad = _bad_urls(source_url, options.target)
    if bad:
        return _fail(bad)
    # A command run by hand: a server that does not answer fails it at once, not after the
    # roles' wait for one still starting.
    source = catalog_for_url(source_url, wait=False)
    target = catalog_for_url(options.target, wait=False)
    try:
        # Neither is migrated yet: the plan is made before anything is written.
        await source.connect(migrate=False)
        await target.connect(migrate=False)
        return await _migrate(settings, source, target, source_url, options)
    except FilmstripError as exc:
        return _fail(str(exc))
    finally:
        await target.close()
        await source.close()


async def _migrate(
    settings: Settings, source: Catalog, target: Catalog, source_url: str, options: Options
) -> int:
    plan = await catalog_copy.inspect(
        source, target, batch_rows=options.batch_rows, allow_extra=options.allow_extra
    )
    _print_plan(plan, source_url, options)
    if plan.refusals:
        for refusal in plan.refusals:
            _say(f"REFUSED: {refusal}")
        return 1
    write = not options.dry_run
    if write:
        for side, catalog, version in (
            ("source", source, plan.source.version),
            ("target", target, plan.target.version),
        ):
            if version < LATEST:
                await catalog.create_schema()
                _say(f"{side}: schema brought from version {version} to {LATEST}")
        # Read again now both schemas are current (columns added, tables made).
        plan = await catalog_copy.inspect(
            source, target, batch_rows=options.batch_rows, allow_extra=options.allow_extra
        )
        if plan.refusals:
            for refusal in plan.refusals:
                _say(f"REFUSED: {refusal}")
            return 1
    elif not plan.comparable:
        if not any(plan.target.rows.values()):
            _say("It would copy every row: the target holds none. (Dry run: nothing written.)")
        else:
            _say("(Dry run: rows are compared once both schemas are current; nothing written.)")
        return 0
    results = await catalog_copy.copy(
        plan,
        source,
        target,
        write=write,
        overwrite=options.overwrite,
        batch_rows=options.batch_rows,
        progress=_Progress(),
    )
    changed: list[str] = []
    if write:
        await catalog_copy.verify(target, plan, results, batch_rows=options.batch_rows)
        changed = await catalog_copy.source_changes(
            source, plan, results, batch_rows=options.batch_rows
        )
    return _print_results(settings, results, changed, options)


def _print_plan(plan: Plan, source_url: str, options: Options) -> None:
    def side(version: int, rows: dict[str, int]) -> str:
        if not rows:
            return "empty"
        return f"schema version {version}, {len(rows)} tables, {sum(rows.values())} rows"

    _say(f"{'DRY RUN: ' if options.dry_run else ''}copy the catalog")
    _say(f"  from {redacted_url(source_url)} ({side(plan.source.version, plan.source.rows)})")
    _say(f"  to   {redacted_url(options.target)} ({side(plan.target.version, plan.target.rows)})")
    if plan.refusals:
        return
    _say("It will:")
    for name, version in (("source", plan.source.version), ("target", plan.target.version)):
        if version < LATEST:
            _say(f"  - bring the {name}'s schema from version {version} to {LATEST} (migrations)")
    tables = ", ".join(f"{s.name} ({plan.source.rows.get(s.name, 0)})" for s in plan.tables)
    _say(f"  - copy every table, in one snapshot of the source: {tables}")
    _say(f"    {options.batch_rows} rows a transaction; rows already there and equal are skipped")
    if options.overwrite:
        _say("  - replace rows of the target that differ with the source's")
    else:
        _say("  - report rows of the target that differ, and leave them (--overwrite replaces)")
    for table, found in sorted(plan.extra.items()):
        _say(f"  - keep {found.count} rows of {table} only the target has (--allow-extra)")
    _say("  - check each table's row count and checksum on both sides")
    _say(
        "  - the roles should be stopped: writes to the source after its snapshot are not "
        "copied (the command reads the source again at the end and says if it changed)"
    )


class _Progress:
    """A line per table every few seconds, and when it is done."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= 2.0:
            self._last = now
            _say(f"  {table}: {done}/{total} rows")


def _keys(examples: list[tuple[Key, list[str]]]) -> str:
    """Keys (and the columns that differ, if known) for the report."""
    return "; ".join(
        "/".join(str(v) for v in key) + (f" ({', '.join(columns)})" if columns else "")
        for key, columns in examples
    )


def _print_results(
    settings: Settings, results: list[TableResult], changed: list[str], options: Options
) -> int:
    write = not options.dry_run
    _say("Done:" if write else "It would:")
    head = f"  {'table':<18} {'source':>8} {'copied' if write else 'to copy':>8} {'present':>8}"
    _say(f"{head} {'conflicts':>9}  checksum")
    faults = 0
    for r in results:
        check = ""
        if r.target is not None and not r.verified:
            check = f"MISMATCH: target {r.target.hex[:16]}"
        elif r.target is not None:
            check = "= target" if r.target == r.source else "verified (target keeps its rows)"
        _say(
            f"  {r.table:<18} {r.source.rows:>8} {r.copied:>8} {r.present:>8} "
            f"{r.conflicts.count:>9}  {r.source.hex[:16]} {check}"
        )
    for r in results:
        if r.replaced:
            _say(
                f"REPLACED: {r.replaced} rows of {r.table} differed in the target and now hold "
                f"the source's values: {_keys(r.conflicts.examples)}"
            )
        elif r.conflicts.count:
            faults += 1
            _say(
                f"CONFLICT: {r.conflicts.count} rows of {r.table} differ in the target (left as "
                f"they are; --overwrite replaces them): {_keys(r.conflicts.examples)}"
            )
        if r.raced:
            faults += 1
            _say(f"CONFLICT: {r.raced} rows of {r.table} were written to the target meanwhile")
        if r.extra:
            _say(f"kept {r.extra} rows of {r.table} that only the target has")
        if r.target is not None and not r.verified:
            faults += 1
            _say(
                f"MISMATCH: {r.table}: the target holds {r.target.rows} rows, checksum "
                f"{r.target.hex}; expected {r.expected.rows} rows, checksum {r.expected.hex}"
            )
    if changed:
        faults += 1
        _say(
            f"SOURCE CHANGED during the copy: {', '.join(changed)} (roles still running?). "
            "Stop them and run the command again to bring the rest over"
            " (--overwrite for rows changed since)"
        )
    if faults:
        return 1
    if write:
        _say("Every table verified: same rows and checksum on both sides.")
        _say("Next: point every role at the new catalog:")
        _say(f"  FILMSTRIP_DATABASE_URL={redacted_url(options.target)}")
    return 0
