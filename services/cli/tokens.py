"""``filmstrip token create|revoke``: tokens live (hashed) in the catalog."""

from __future__ import annotations

import sys
import uuid

from filmstrip.auth import hash_token, new_token
from filmstrip.catalog import Catalog, ClientRecord, open_catalog
from filmstrip.settings import Settings


async def ensure_client(catalog: Catalog, name: str, *, admin: bool) -> ClientRecord:
    """The client called ``name``, created if new."""
    client = await catalog.find_client_by_name(name)
    if client is None:
        client = await catalog.create_client(str(uuid.uuid4()), name, is_admin=admin)
    return client


async def issue_token(catalog: Catalog, name: str, *, admin: bool) -> tuple[ClientRecord, str]:
    """A new token for the client ``name`` (created if new)."""
    client = await ensure_client(catalog, name, admin=admin)
    token, digest = new_token()
    await catalog.add_token(digest, client.id)
    return client, token


async def create(settings: Settings, name: str, *, admin: bool) -> int:
    """Print a new token for ``name``; only its hash is stored."""
    catalog = await open_catalog(settings)
    try:
        client, token = await issue_token(catalog, name, admin=admin)
    finally:
        await catalog.close()
    print(token)
    print(
        f"client {client.name} ({client.id}){' admin' if client.is_admin else ''}", file=sys.stderr
    )
    return 0


async def revoke(settings: Settings, token: str | None, client_name: str | None) -> int:
    """Revoke one token, or every token of a client."""
    if not token and not client_name:
        print("filmstrip token revoke: give a token or --client NAME", file=sys.stderr)
        return 2
    catalog = await open_catalog(settings)
    try:
        if token:
            done = await catalog.revoke_token(hash_token(token))
            print("revoked" if done else "no such live token", file=sys.stderr)
            return 0 if done else 1
        client = await catalog.find_client_by_name(client_name or "")
        if client is None:
            print(f"no client {client_name!r}", file=sys.stderr)
            return 1
        count = await catalog.revoke_client_tokens(client.id)
        print(f"revoked {count} token(s)", file=sys.stderr)
        return 0
    finally:
        await catalog.close()
