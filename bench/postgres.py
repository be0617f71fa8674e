"""Databases of their own on a PostgreSQL server, for the benches and the tests."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.conninfo import conninfo_to_dict

# The machine's server, as the current user (trust auth on the project's machines and CI).
SERVER_URL = "postgresql://127.0.0.1:5432/postgres"


def database_url(name: str, server: str = SERVER_URL) -> str:
    """The URL of database ``name`` on ``server``."""
    params = {k: str(v) for k, v in conninfo_to_dict(server).items()}
    user = params.get("user", "")
    if user and params.get("password"):
        user += f":{params['password']}"
    host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{name}"


def create_database(server: str = SERVER_URL) -> str:
    """A new empty database with a unique name on ``server``; its URL."""
    name = f"filmstrip_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name, server)


def drop_database(url: str, server: str = SERVER_URL) -> None:
    """Drop the database of ``url``, whoever is still connected to it."""
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def commits(database_url: str) -> int:
    """Transactions committed in the catalog's database so far (PostgreSQL's statistics)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        # Statistics are flushed at most once a second; a fresh snapshot reads them now.
        await conn.execute("SELECT pg_stat_force_next_flush()")
        cur = await conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0
