"""The ``filmstrip`` command: run a role (api, worker, bus), everything (dev), or admin tasks."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from filmstrip import __version__, file_modes
from filmstrip.errors import StartupError
from filmstrip.logs import setup_logging
from filmstrip.protocols.jobs import PIPELINE_NAMES
from filmstrip.settings import Settings, SettingsError, load_settings

ROLES = ("api", "worker", "bus")
# The help's description: argparse prints it as it stands, so no markup.
DESCRIPTION = "Filmstrip: run a role (api, worker, bus), everything at once (dev), or admin tasks."


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return asyncio.run(coro) or 0
    return uvloop.run(coro) or 0


async def _serve_role(role: str, settings: Settings) -> int:
    module = importlib.import_module(f"filmstrip.services.{role}.main")
    serve: Callable[[Settings, asyncio.Event], Awaitable[None]] = module.serve
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(settings, stop)
    except StartupError as exc:
        extra = {"cause": exc.message, "fix": exc.fix}
        logging.getLogger(f"filmstrip.{role}").error("cannot start", extra=extra)
        return 2
    return 0


def _migrate_parser(sub: Any) -> None:
    migrate = sub.add_parser(
        "migrate", help="move to shared engines: copy the catalog or the blobs, verified"
    )
    what = migrate.add_subparsers(dest="migrate_command", required=True)
    catalog = what.add_parser(
        "catalog",
        help="copy every table into another catalog (postgresql://…), checked by row counts"
        " and checksums; safe to run again",
    )
    catalog.add_argument("--to", required=True, help="the new catalog: postgresql://…")
    catalog.add_argument(
        "--from",
        dest="source",
        default="",
        help="the catalog to copy (default: the configured one)",
    )
    catalog.add_argument(
        "--allow-extra",
        action="store_true",
        help="keep rows only the target has instead of refusing",
    )
    catalog.add_argument("--batch-rows", type=int, default=500, help="rows per target transaction")
    blobs = what.add_parser(
        "blobs",
        help="copy every blob into another store (s3://bucket[/prefix], with the FILMSTRIP_S3_*"
        " settings), each checked; safe to run again",
    )
    blobs.add_argument("--to", required=True, help="the new store: s3://bucket[/prefix]")
    blobs.add_argument(
        "--from", dest="source", default="", help="the store to copy (default: the configured one)"
    )
    blobs.add_argument("--concurrency", type=int, default=4, help="blobs copied at once")
    for parser in (catalog, blobs):
        parser.add_argument(
            "--dry-run", action="store_true", help="say what it would do; write nothing"
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="replace what the target holds that differs from the source (else reported)",
        )


def _upload_parser(sub: Any) -> None:
    upload = sub.add_parser(
        "upload",
        help="upload photos (files and folders, recursively) and follow them until processed",
        description="Hashes every file first and sends only what the api does not have;"
        " large files go through tus, so running the same command again after Ctrl-C sends"
        " only the rest. Files that are not photos are reported, not sent. Exits 1 if any"
        " file failed (named on stderr).",
    )
    upload.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    upload.add_argument(
        "--api", default=None, help="the api's URL (default FILMSTRIP_API_URL, else this machine's)"
    )
    upload.add_argument("--token", default=None, help="an API token (default FILMSTRIP_TOKEN)")
    upload.add_argument(
        "--session", default=None, help="an upload session id to add the photos to, or 'new'"
    )
    upload.add_argument("--concurrency", type=int, default=4, help="files sent at once")
    upload.add_argument(
        "--no-wait", action="store_true", help="do not wait for the photos to be processed"
    )
    upload.add_argument("--json", action="store_true", help="print each file's outcome as JSON")
    upload.add_argument(
        "--pipeline", choices=PIPELINE_NAMES, default=None, help="the pipeline to run"
    )
    upload.add_argument(
        "--priority",
        type=int,
        choices=range(1, 11),
        metavar="1-10",
        default=None,
        help="1 runs first, 10 last (ahead of the server's default needs an admin token)",
    )
    upload.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where unfinished uploads are remembered (default ~/.local/state/filmstrip/uploads)",
    )


def _upload(settings: Settings, args: argparse.Namespace) -> int:
    from filmstrip.services.cli import upload

    options = upload.Options(
        paths=args.paths,
        api_url=(args.api or settings.effective_api_url).rstrip("/"),
        token=args.token or settings.client.token,
        session=args.session,
        concurrency=max(1, args.concurrency),
        wait=not args.no_wait,
        json=args.json,
        state_dir=args.state_dir,
        pipeline=args.pipeline,
        priority=args.priority,
    )
    try:
        return _run(_interruptible(upload.run(options)))
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130


INTERRUPTED = "\ninterrupted: run the same command again to send the rest"
# How long Ctrl-C waits for the upload to unwind before the command leaves anyway.
INTERRUPT_GRACE_S = 1.0


async def _interruptible(work: Coroutine[Any, Any, int]) -> int:
    """``work``, which Ctrl-C cancels; if it has not ended ``INTERRUPT_GRACE_S`` later, the
    command exits 130 at once: a cancelled aiohttp request still writing its body was seen
    to finish the whole upload first, and what the next run needs was kept before it began."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def leave() -> None:
        print(INTERRUPTED, file=sys.stderr, flush=True)
        if sys.stderr.isatty():
            sys.stderr.write("\x1b[?25h")  # the progress display hides the cursor
            sys.stderr.flush()
        os._exit(130)

    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()
        loop.call_later(INTERRUPT_GRACE_S, leave)

    loop.add_signal_handler(signal.SIGINT, interrupt)
    try:
        status = await work
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    if interrupted:  # the cancellation was lost on the way: still an interrupted run
        raise KeyboardInterrupt
    return status


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.migrate_command == "catalog":
        from filmstrip.services.cli import migrate_catalog

        catalog = migrate_catalog.Options(
            source=args.source,
            target=args.to,
            dry_run=args.dry_run,
            overwrite=args.overwrite,
            allow_extra=args.allow_extra,
            batch_rows=max(1, args.batch_rows),
        )
        return _run(migrate_catalog.run(settings, catalog))
    from filmstrip.services.cli import migrate_blobs

    blobs = migrate_blobs.Options(
        source=args.source,
        target=args.to,
        dry_run=args.dry_run,
        overwrite=args.overwrite,
        concurrency=max(1, args.concurrency),
    )
    return _run(migrate_blobs.run(settings, blobs))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    # A native crash (a decoder fed a hostile file) then leaves every thread's Python
    # stack on stderr instead of a bare exit code.
    faulthandler.enable()
    parser = argparse.ArgumentParser(prog="filmstrip", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"filmstrip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for role in ROLES:
        sub.add_parser(role, help=f"run the {role} role (settings from FILMSTRIP_* variables)")
    sub.add_parser("dev", help="run everything on this machine: private Redis, api, worker, bus")
    token = sub.add_parser(
        "token",
        help="manage API tokens (in the catalog the settings name; each command says which)",
    )
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a client (if new) and print a token")
    create.add_argument("client_name")
    create.add_argument(
        "--create-catalog",
        action="store_true",
        help="make the catalog if there is none yet (else that is refused: the settings"
        " probably point at the wrong place)",
    )
    create.add_argument(
        "--admin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make the client an admin (queue admin, dashboard); --no-admin takes the role"
        " away; without either a new client is not an admin and an existing one keeps its role",
    )
    listing = token_sub.add_parser(
        "list", help="each token's client, role, creation and last use (never the token)"
    )
    listing.add_argument("--revoked", action="store_true", help="include revoked tokens")
    revoke = token_sub.add_parser("revoke", help="revoke a token, or all of a client's")
    revoke.add_argument("token", nargs="?")
    revoke.add_argument("--client", dest="client_name")
    _upload_parser(sub)
    sub.add_parser("schemas", help="write the protocol schema files into protocols/schemas")
    _migrate_parser(sub)

    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"filmstrip: {exc}", file=sys.stderr)
        return 2
    if args.command in ROLES:
        setup_logging(args.command, level=settings.logs.log_level, json=settings.logs.log_json)
    if args.command not in ("schemas", "upload"):
        # Before anything is created: this process, and what it starts, make private files.
        file_modes.restrict(settings)
    if args.command in ROLES:
        return _run(_serve_role(args.command, settings))
    if args.command == "dev":
        from filmstrip.services.cli.dev import run_dev

        return run_dev(settings)
    if args.command == "token":
        from filmstrip.services.cli import tokens

        if args.token_command == "create":
            return _run(
                tokens.create(
                    settings,
                    args.client_name,
                    admin=args.admin,
                    create_catalog=args.create_catalog,
                )
            )
        if args.token_command == "list":
            return _run(tokens.list_tokens(settings, revoked=args.revoked))
        return _run(tokens.revoke(settings, args.token, args.client_name))
    if args.command == "migrate":
        return _migrate(settings, args)
    if args.command == "upload":
        return _upload(settings, args)
    if args.command == "schemas":
        from filmstrip.protocols.generate import write_all

        for path in write_all():
            print(path)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
