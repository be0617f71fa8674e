"""``filmstrip dev``: a private Redis plus the three roles as child processes.

It says it is running once every role answers its health check (its own role: the answer
carries the identity dev gave it, never another instance's on that port), and stops
(exit 1) with one line naming a role that cannot start; a role that dies later starts
again after a backoff while the others run on. One dev per data dir: a second one stops
at once, naming the first. Children run in their own sessions so Ctrl-C reaches only this
supervisor, which then stops the roles first (they hand back in-flight jobs) and Redis
last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, as before
    fcntl = None  # type: ignore[assignment]

from redis.exceptions import RedisError

from filmstrip.auth import hash_token
from filmstrip.catalog import open_catalog
from filmstrip.embedded.redis_server import RedisServer
from filmstrip.embedded.supervisor import Role, RoleFailed, Supervisor, command
from filmstrip.errors import StartupError
from filmstrip.listening import check_free
from filmstrip.logs import setup_logging
from filmstrip.redis_client import open_redis
from filmstrip.services.cli.dev_output import RoleOutput
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import Settings, database_backend, redacted_url
from filmstrip.supervised import IDENTITY_ENV

log = logging.getLogger("filmstrip.dev")

ROLES = ("api", "worker", "bus")
REDIS_WAIT_S = 10.0  # a given Redis that is still starting
LOCK_FILE = "dev.lock"  # in the data dir, held while a dev runs on it


async def _dev_token(settings: Settings) -> str:
    """The demo client's token, kept in ``<data_dir>/dev-token`` (embedded mode only)."""
    path = Path(settings.files.data_dir) / "dev-token"
    catalog = await open_catalog(settings)
    try:
        if path.exists():
            token = path.read_text().strip()
            if await catalog.client_for_token(hash_token(token)) is not None:
                return token
        _client, token = await issue_token(catalog, "demo", admin=True)
    finally:
        await catalog.close()
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


async def _redis_silent(settings: Settings, within_s: float) -> str | None:
    """None once the Redis the settings name answers a PING; why not, after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            client = await open_redis(settings, command_timeout_s=2)
            try:
                await client.ping()
                return None
            finally:
                await client.aclose()
        except (RedisError, OSError) as exc:
            if time.monotonic() >= deadline:
                return str(exc) or type(exc).__name__
        await asyncio.sleep(0.5)


def _lock_data_dir(data: Path) -> int | str:
    """Hold ``<data>/dev.lock`` (an flock, let go by the kernel when this process ends, however
    it ends) and write this pid in it: the open file, to keep; or why not, naming the dev
    that holds it. Two devs on one data dir would run two Redis servers on one append-only
    file and two workers on one catalog."""
    fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = ""
        for _ in range(20):  # it writes its pid just after it took the lock
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            if other:
                break
            time.sleep(0.05)
        os.close(fd)
        return (
            f"another filmstrip dev (pid {other or 'unknown'}) is running on the data dir "
            f"{data}; stop it, or set FILMSTRIP_DATA_DIR to another folder"
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _ports_taken(settings: Settings) -> str | None:
    """None when every role's port can be bound right now; else one line naming the role,
    the cause and the setting to change (the role itself would say the same, but only
    after dev had started the others)."""
    for role, host, port, name in (
        ("api", settings.api.host, settings.api.port, "API"),
        ("bus", settings.bus.host, settings.bus.port, "BUS"),
        ("worker", settings.worker.metrics_host, settings.worker.metrics_port, "WORKER_METRICS"),
    ):
        try:
            check_free(host, port, settings=name)
        except StartupError as exc:
            return f"{role} cannot start: {exc.message}; {exc.fix}"
    return None


def _health(role: str, settings: Settings) -> str | None:
    """The URL that answers 200 once ``role`` is ready (the worker's: its metrics)."""
    host, port, path = {
        "api": (settings.api.host, settings.api.port, "/readyz"),
        "bus": (settings.bus.host, settings.bus.port, "/healthz"),
        "worker": (settings.worker.metrics_host, settings.worker.metrics_port, "/metrics"),
    }[role]
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, host)
    return f"http://{host}:{port}{path}" if port else None


def run_dev(settings: Settings) -> int:
    """Run everything until Ctrl-C or SIGTERM; return the exit code."""
    data = Path(settings.files.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    terminal = sys.stderr.isatty()
    people = settings.logs.log_json is False or (settings.logs.log_json is None and terminal)
    setup_logging("dev", level=settings.logs.log_level, json=not people)
    lock = _lock_data_dir(data)
    if isinstance(lock, str):
        log.error(lock)
        return 1
    try:
        return _run_dev(settings, data, people, terminal)
    finally:
        os.close(lock)  # after Redis and the roles stopped


def _run_dev(settings: Settings, data: Path, people: bool, terminal: bool) -> int:
    taken = _ports_taken(settings)
    if taken is not None:
        log.error(taken)
        return 1
    output = RoleOutput(readable=people, colour=people and terminal)
    # The roles tell dev in JSON; it shows their lines as its own settings say. Their
    # health answers carry this dev's identity: another instance's answer is not theirs.
    identity = secrets.token_hex(16)
    env = {
        **os.environ, "FILMSTRIP_DATA_DIR": str(data), "FILMSTRIP_LOG_JSON": "true",
        IDENTITY_ENV: identity,
    }  # fmt: skip
    redis: RedisServer | None = None
    # A Redis given by FILMSTRIP_REDIS_URL or a PaaS's REDIS_URL is used; else a private one.
    if "FILMSTRIP_REDIS_URL" not in os.environ and not os.environ.get("REDIS_URL"):
        redis = RedisServer(settings.embedded_redis_dir.resolve(), appendonly=True)
        redis.start()
        env["FILMSTRIP_REDIS_URL"] = redis.url
    else:
        # Else every role would retry it for a minute and dev end without naming it.
        why = asyncio.run(_redis_silent(settings, within_s=REDIS_WAIT_S))
        if why is not None:
            name = "FILMSTRIP_REDIS_URL" if "FILMSTRIP_REDIS_URL" in os.environ else "REDIS_URL"
            log.error(
                "redis at %s (%s) does not answer: %s; start it, or unset %s so that dev runs "
                "its own",
                redacted_url(settings.redis.url), name, why, name,
            )  # fmt: skip
            return 1
    token = asyncio.run(_dev_token(settings))
    ready = stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if not ready:
            raise KeyboardInterrupt  # out of the wait for the roles

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    roles = [
        Role(role, command(role), env, _health(role, settings), identity=identity) for role in ROLES
    ]
    supervisor = Supervisor(roles, launch=output.launch)
    failure = ""
    try:
        supervisor.start()
        supervisor.wait_ready(timeout=60)
        ready = True
        print(_banner(settings, data, redis, token), flush=True)
        while not stopping:
            supervisor.keep_running()  # a role that dies starts again, after a backoff
            time.sleep(0.2)
    except RoleFailed as failed:
        failure = output.why(failed)
    except KeyboardInterrupt:
        pass
    finally:
        ready = True  # a second Ctrl-C must not cut the stopping short
        supervisor.stop(timeout=settings.queue.shutdown_grace_s + 5)
        output.drain()
        if redis is not None:
            redis.stop()
        if failure:  # the last line, after what the others said as they stopped
            log.error(failure)
        else:
            log.info("stopped")
    return 1 if failure else 0


def _banner(settings: Settings, data: Path, redis: RedisServer | None, token: str) -> str:
    api = f"http://{settings.api.host}:{settings.api.port}"
    stores = f"  blobs, catalog {data}\n"
    if settings.catalog.database_url:  # not the SQLite file in the data dir
        backend = database_backend(settings.catalog.database_url)
        stores = f"  blobs          {data}\n  catalog        {backend}\n"
    bus = f"ws://{settings.bus.host}:{settings.bus.port}/ws"
    return (
        "\nFilmstrip is running (Ctrl-C stops everything)\n"
        f"  gallery & API  {api}/\n"
        f"  event bus      {bus}\n"
        f"  redis          {redis.url if redis else settings.redis.url}"
        f"{' (private, data in ' + str(redis.dir) + ')' if redis else ''}\n"
        f"{stores}"
        f"  demo token     {token}\n"
        f"  try: curl -H 'Authorization: Bearer {token}' -F file=@photo.jpg {api}/v1/photos\n"
    )
