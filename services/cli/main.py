"""The ``filmstrip`` command: run a role (api, worker, bus), everything (dev), or admin tasks."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from filmstrip import file_modes
from filmstrip.logs import setup_logging
from filmstrip.settings import Settings, SettingsError, load_settings

ROLES = ("api", "worker", "bus")


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows lacks it
        return asyncio.run(coro) or 0
    return uvloop.run(coro) or 0


async def _serve_role(role: str, settings: Settings) -> int:
    module = importlib.import_module(f"services.{role}.main")
    serve: Callable[[Settings, asyncio.Event], Awaitable[None]] = module.serve
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    # A native crash (a decoder fed a hostile file) then leaves every thread's Python
    # stack on stderr instead of a bare exit code.
    faulthandler.enable()
    parser = argparse.ArgumentParser(prog="filmstrip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for role in ROLES:
        sub.add_parser(role, help=f"run the {role} role (settings from FILMSTRIP_* variables)")
    sub.add_parser("dev", help="run everything on this machine: private Redis, api, worker, bus")
    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a client (if new) and print a token")
    create.add_argument("client_name")
    create.add_argument(
        "--admin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make the client an admin (queue admin, dashboard); --no-admin takes the role"
        " away; without either a new client is not an admin and an existing one keeps its role",
    )
    revoke = token_sub.add_parser("revoke", help="revoke a token, or all of a client's")
    revoke.add_argument("token", nargs="?")
    revoke.add_argument("--client", dest="client_name")
    sub.add_parser("schemas", help="write the protocol schema files into protocols/schemas")

    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"filmstrip: {exc}", file=sys.stderr)
        return 2
    if args.command in ROLES:
        setup_logging(args.command, level=settings.log_level, json=settings.log_json)
    if args.command != "schemas":
        # Before anything is created: this process, and what it starts, make private files.
        file_modes.restrict(settings)
    if args.command in ROLES:
        return _run(_serve_role(args.command, settings))
    if args.command == "dev":
        from services.cli.dev import run_dev

        return run_dev(settings)
    if args.command == "token":
        from services.cli import tokens

        if args.token_command == "create":
            return _run(tokens.create(settings, args.client_name, admin=args.admin))
        return _run(tokens.revoke(settings, args.token, args.client_name))
    if args.command == "schemas":
        from protocols.generate import write_all

        for path in write_all():
            print(path)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
