"""``filmstrip token create|revoke``: tokens live (hashed) in the catalog."""

from __future__ import annotations

import sys
import uuid

import msgspec

from filmstrip.auth import hash_token, new_token
from filmstrip.catalog import Catalog, ClientRecord, open_catalog
from filmstrip.settings import Settings


async def ensure_client(catalog: Catalog, name: str, *, admin: bool | None) -> ClientRecord:
    """The client called ``name``, created if new; ``admin`` True or False sets its role,
    None keeps an existing client's role (a new one is not an admin)."""
    client = await catalog.find_client_by_name(name)
    if client is None:
        return await catalog.create_client(str(uuid.uuid4()), name, is_admin=bool(admin))
    if admin is not None and admin != client.is_admin:
        await catalog.set_client_admin(client.id, admin)
        client = msgspec.structs.replace(client, is_admin=admin)
    return client


async def issue_token(
    catalog: Catalog, name: str, *, admin: bool | None
) -> tuple[ClientRecord, str]:
    """A new token for the client ``name`` (created if new, its role set as
    :func:`ensure_client` does)."""
    client = await ensure_client(catalog, name, admin=admin)
    token, digest = new_token()
    await catalog.add_token(digest, client.id)
    return client, token


def role_note(before: ClientRecord | None, after: ClientRecord) -> str:
    """What ``token create`` did to the client's role, for the operator: the role belongs
    to the client, so it holds for all of its tokens."""
    name = after.name
    if before is None:
        return f"created client {name} ({after.id}){' as an admin' if after.is_admin else ''}"
    if after.is_admin and not before.is_admin:
        return f"{name} is now an admin: all of its tokens, old and new, are admin tokens"
    if before.is_admin and not after.is_admin:
        return f"{name} is no longer an admin: none of its tokens are admin tokens"
    if after.is_admin:
        return (
            f"{name} is an admin; the new token is an admin token"
            " (--no-admin takes the role away from all of its tokens)"
        )
    return f"client {name} ({after.id})"


async def create(settings: Settings, name: str, *, admin: bool | None) -> int:
    """Print a new token for ``name``; only its hash is stored. ``admin`` as in
    :func:`ensure_client`; what happened to the role goes to stderr."""
    catalog = await open_catalog(settings)
    try:
        before = await catalog.find_client_by_name(name)
        client, token = await issue_token(catalog, name, admin=admin)
    finally:
        await catalog.close()
    print(token)
    print(role_note(before, client), file=sys.stderr)
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
