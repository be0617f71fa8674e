"""``filmstrip dev``: a private Redis plus the three roles as child processes.

Children run in their own sessions so Ctrl-C reaches only this supervisor, which then
stops the roles first (they hand back in-flight jobs) and Redis last.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from filmstrip.auth import hash_token
from filmstrip.catalog import open_catalog
from filmstrip.embedded.redis_server import RedisServer
from filmstrip.embedded.supervisor import Role, Supervisor, command
from filmstrip.settings import Settings, database_backend
from services.cli.tokens import issue_token

ROLES = ("api", "worker", "bus")


async def _dev_token(settings: Settings) -> str:
    """The demo client's token, kept in ``<data_dir>/dev-token`` (embedded mode only)."""
    path = Path(settings.data_dir) / "dev-token"
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


def run_dev(settings: Settings) -> int:
    """Run everything until Ctrl-C or SIGTERM; return the exit code."""
    data = Path(settings.data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["FILMSTRIP_DATA_DIR"] = str(data)
    redis: RedisServer | None = None
    # A Redis given by FILMSTRIP_REDIS_URL or a PaaS's REDIS_URL is used; else a private one.
    if "FILMSTRIP_REDIS_URL" not in os.environ and not os.environ.get("REDIS_URL"):
        redis = RedisServer(settings.embedded_redis_dir.resolve(), appendonly=True)
        redis.start()
        env["FILMSTRIP_REDIS_URL"] = redis.url
    token = asyncio.run(_dev_token(settings))

    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    supervisor = Supervisor([Role(role, command(role), env) for role in ROLES])
    code = 0
    try:
        supervisor.start()
        api = f"http://{settings.api_host}:{settings.api_port}"
        stores = f"  blobs, catalog {data}\n"
        if settings.database_url:  # not the SQLite file in the data dir
            backend = database_backend(settings.database_url)
            stores = f"  blobs          {data}\n  catalog        {backend}\n"
        bus = f"ws://{settings.bus_host}:{settings.bus_port}/ws"
        print(
            "\nFilmstrip is running (Ctrl-C stops everything)\n"
            f"  gallery & API  {api}/\n"
            f"  event bus      {bus}\n"
            f"  redis          {redis.url if redis else settings.redis_url}"
            f"{' (private, data in ' + str(redis.dir) + ')' if redis else ''}\n"
            f"{stores}"
            f"  demo token     {token}\n"
            f"  try: curl -H 'Authorization: Bearer {token}' -F file=@photo.jpg {api}/v1/photos\n",
            flush=True,
        )
        while not stopping:
            for role in ROLES:
                proc = supervisor.process(role)
                if proc is not None and proc.poll() is not None:
                    print(f"filmstrip dev: {role} exited with {proc.returncode}", file=sys.stderr)
                    code = 1
                    stopping = True
            time.sleep(0.2)
    finally:
        supervisor.stop(timeout=settings.shutdown_grace_s + 5)
        if redis is not None:
            redis.stop()
        print("filmstrip dev: stopped", file=sys.stderr)
    return code
