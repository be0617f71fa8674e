"""The three roles as child processes on a private Redis, for end-to-end and browser tests.

Started with the Procfile's commands so the tests exercise what production runs.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.redis_server import RedisServer
from filmstrip.catalog import catalog_for_url
from filmstrip.embedded.redis_server import free_port
from filmstrip.embedded.supervisor import Role, Supervisor, env_without_filmstrip
from filmstrip.services.cli.tokens import issue_token
from filmstrip.settings import sqlite_url
from tests.support import postgres

ROOT = Path(__file__).resolve().parents[2]


def procfile_commands() -> dict[str, list[str]]:
    """Role → argv from the Procfile, using this venv's console script when installed."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if ":" not in line or line.lstrip().startswith("#"):
            continue
        role, command = line.split(":", 1)
        argv = shlex.split(command)
        assert argv[0] == "filmstrip"
        script = Path(sys.executable).parent / "filmstrip"
        if script.exists():
            argv[0] = str(script)
        else:
            argv = [sys.executable, "-m", "filmstrip.services.cli.main", *argv[1:]]
        commands[role.strip()] = argv
    return commands


@dataclass
class Stack:
    """Running roles: their URLs, a client token, an admin token and the processes."""

    api: str
    bus: str
    worker_metrics: str
    token: str
    admin_token: str
    data_dir: Path
    redis: RedisServer
    supervisor: Supervisor
    env: dict[str, str] = field(default_factory=dict)
    # A PostgreSQL catalog of the stack's own (FILMSTRIP_TEST_CATALOG), dropped by stop().
    database_url: str = ""

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        """Each Procfile process's current process."""
        return {n: p for n in self.supervisor.names if (p := self.supervisor.process(n))}

    def launch(self, role: str) -> None:
        """Start one role (again), appending to its log."""
        self.supervisor.start(role)

    def halt(self, role: str) -> None:
        """Stop one role gracefully (SIGTERM) and wait for it."""
        self.supervisor.stop(role, timeout=30)

    def log(self, role: str) -> str:
        return (self.data_dir / "logs" / f"{role}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the roles (gracefully, then by force), then Redis; print each log's tail."""
        self.supervisor.stop(timeout=30)
        for role in self.procs:
            print(f"--- {role} log (tail)\n" + self.log(role)[-2000:])
        self.redis.stop(kill=True)
        shutil.rmtree(self.redis.dir, ignore_errors=True)
        if self.database_url:
            postgres.drop_database(self.database_url)


async def _tokens(database_url: str) -> tuple[str, str]:
    catalog = catalog_for_url(database_url)
    await catalog.connect()
    try:
        _client, token = await issue_token(catalog, "browser-user", admin=False)
        _admin, admin = await issue_token(catalog, "browser-admin", admin=True)
    finally:
        await catalog.close()
    return token, admin


def start_stack(data: Path, **settings: str) -> Stack:
    """Start Redis and the Procfile's roles with ``data`` as their data dir; wait until ready.

    ``settings`` are extra ``FILMSTRIP_*`` values (lower-case names without the prefix).
    """
    redis = RedisServer(appendonly=True)
    redis.start()
    # The stack outlives a test (module fixtures): its database is not the test's to drop.
    own_database = (
        postgres.create_database(per_test=False)
        if postgres.catalog_backend() == "postgresql" and "database_url" not in settings
        else ""
    )
    if own_database:
        settings = {**settings, "database_url": own_database}
    database_url = settings.get("database_url") or sqlite_url(str(data / "filmstrip.db"))
    token, admin = asyncio.run(_tokens(database_url))
    api_port, bus_port, metrics_port = free_port(), free_port(), free_port()
    env = env_without_filmstrip()
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    env.update(
        FILMSTRIP_DATA_DIR=str(data),
        FILMSTRIP_REDIS_URL=redis.url,
        FILMSTRIP_BUS_PORT=str(bus_port),
        FILMSTRIP_WORKER_METRICS_PORT=str(metrics_port),
        FILMSTRIP_WORKER_CONCURRENCY="2",
        PORT=str(api_port),
        **{f"FILMSTRIP_{k.upper()}": v for k, v in settings.items()},
    )
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    health = {
        "web": f"http://127.0.0.1:{api_port}/readyz",
        "bus": f"http://127.0.0.1:{bus_port}/healthz",
    }
    roles = [
        Role(name, argv, env, health=health.get(name), log=logs / f"{name}.log", cwd=ROOT)
        for name, argv in procfile_commands().items()
    ]
    stack = Stack(
        api=f"http://127.0.0.1:{api_port}",
        bus=f"ws://127.0.0.1:{bus_port}/ws",
        worker_metrics=f"http://127.0.0.1:{metrics_port}/metrics",
        token=token,
        admin_token=admin,
        data_dir=data,
        redis=redis,
        supervisor=Supervisor(roles),
        env=env,
        database_url=own_database,
    )
    try:
        stack.supervisor.start()
        stack.supervisor.wait_ready(timeout=60)
    except BaseException:
        stack.stop()
        raise
    return stack
