"""PostgreSQL for the tests: a database of their own on the machine's server, made and
dropped per test, and a private server that a fault test may stop and start.

``FILMSTRIP_TEST_POSTGRES_URL`` names the server (default: 127.0.0.1:5432 as the current
user, which has trust auth on the project's machines and CI). ``FILMSTRIP_TEST_CATALOG=
postgresql`` runs the api, worker, bus and end-to-end tests on a PostgreSQL catalog too.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench import postgres as databases
from filmstrip.embedded.redis_server import free_port

SERVER_URL = os.environ.get("FILMSTRIP_TEST_POSTGRES_URL", databases.SERVER_URL)
PG_BIN = Path("/usr/lib/postgresql")

# Databases made by ``create_database`` and not dropped yet (the conftest drops them after
# each test).
made: list[str] = []


def catalog_backend() -> str:
    """The backend the role tests run their catalog on: ``sqlite`` unless told otherwise."""
    return os.environ.get("FILMSTRIP_TEST_CATALOG", "sqlite")


@functools.cache
def unreachable() -> str | None:
    """Why the test server cannot be used, or None when it can."""
    try:
        with psycopg.connect(SERVER_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL at {SERVER_URL} ({exc})".strip()
    return None


def create_database(server: str = SERVER_URL, *, per_test: bool = True) -> str:
    """A new empty database with a unique name; its URL. ``per_test``: dropped after the
    test (else the caller drops it)."""
    url = databases.create_database(server)
    if per_test and server == SERVER_URL:
        made.append(conninfo_to_dict(url)["dbname"])
    return url


def drop_database(url: str, server: str = SERVER_URL) -> None:
    """Drop the database of ``url``, whoever is still connected to it."""
    databases.drop_database(url, server)
    name = conninfo_to_dict(url)["dbname"]
    if name in made:
        made.remove(name)


def drop_made() -> None:
    """Drop every database ``create_database`` made on the test server."""
    for name in list(made):
        drop_database(databases.database_url(name, SERVER_URL))


class PrivatePostgres:
    """A postgres of the test's own (initdb in a temp dir, run as the ``postgres`` user on
    a free port), to stop and start around what it tests."""

    def __init__(self) -> None:
        versions = sorted(PG_BIN.glob("*/bin/initdb"))
        if not versions:
            raise RuntimeError(f"no initdb under {PG_BIN}")
        self.bin = versions[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="filmstrip-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen[bytes] | None = None

    def _as_postgres(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else list(argv)

    def init(self) -> None:
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            self._as_postgres(
                str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "--no-sync",
            ),
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        """Start it (if it is not running) and wait until it takes connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        log = (self.dir / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            self._as_postgres(
                str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            ),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=1):
                    return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("private postgres did not start: " + self.log()) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it at once (fast shutdown: sessions are cut, as when a server goes away)."""
        if self.proc is not None and self.proc.poll() is None:
            # To the postmaster itself (runuser does not pass SIGINT on): fast shutdown,
            # where SIGTERM would wait for the clients to leave.
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.proc.wait(30)
        self.proc = None

    def log(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def role_catalog_settings(*, per_test: bool = True) -> dict[str, str]:
    """Settings (lower-case names, no prefix) that put a role test's catalog on the backend
    ``FILMSTRIP_TEST_CATALOG`` chose: nothing for SQLite (the data dir's file), else a new
    database on the test server, dropped after the test (``per_test``; else by the caller,
    e.g. a module's fixture, with ``drop_database``)."""
    backend = catalog_backend()
    if backend == "sqlite":
        return {}
    if backend != "postgresql":
        raise ValueError(f"FILMSTRIP_TEST_CATALOG={backend!r}: expected sqlite or postgresql")
    return {"database_url": create_database(per_test=per_test)}
