"""``filmstrip token create|list|revoke``: tokens live (hashed) in the catalog.

Each command says which catalog it used; only ``create --create-catalog`` makes one, so a
command run from the wrong folder does not quietly start an empty catalog of its own.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import msgspec

from filmstrip.auth import hash_token, new_token
from filmstrip.catalog import Catalog, CatalogMissing, ClientRecord, TokenRecord, open_catalog
from filmstrip.errors import TemporaryError
from filmstrip.settings import (
    Settings,
    database_backend,
    redacted_url,
    sqlite_path,
    sqlite_url,
)


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


def catalog_label(settings: Settings) -> str:
    """The catalog's URL for people: an SQLite path made absolute, a password hidden."""
    url = settings.effective_database_url
    if database_backend(url) == "sqlite":
        return sqlite_url(str(Path(sqlite_path(url)).resolve()))
    return redacted_url(url)


async def _open(settings: Settings, command: str, *, create: bool = False) -> Catalog | None:
    """The catalog, said on stderr; None (and why, on stderr) if there is none yet."""
    label = catalog_label(settings)
    try:
        # A command run by hand: an unreachable server fails it at once, not after the
        # roles' wait for one still starting.
        catalog = await open_catalog(settings, create=create, wait=False)
    except CatalogMissing:
        print(
            f"filmstrip token {command}: there is no catalog at {label}. Run it with the"
            " server's settings (its FILMSTRIP_DATA_DIR or FILMSTRIP_DATABASE_URL, or from"
            " the folder it runs in)"
            + (", or pass --create-catalog to start a new one" if command == "create" else ""),
            file=sys.stderr,
        )
        return None
    except TemporaryError as exc:
        print(f"filmstrip token {command}: the catalog at {label} did not answer: {exc}",
              file=sys.stderr)  # fmt: skip
        return None
    print(f"catalog: {label}", file=sys.stderr)
    return catalog


def _not_text(command: str, what: str, value: str | None) -> bool:
    """Whether ``value`` (from argv) holds bytes that are not UTF-8, said on stderr: the
    catalog keeps text, so it could be neither stored nor looked up."""
    try:
        (value or "").encode()
    except UnicodeEncodeError:
        print(f"filmstrip token {command}: the {what} is not valid UTF-8 text", file=sys.stderr)
        return True
    return False


async def create(
    settings: Settings, name: str, *, admin: bool | None, create_catalog: bool = False
) -> int:
    """Print a new token for ``name``; only its hash is stored. ``admin`` as in
    :func:`ensure_client`; what happened to the role goes to stderr. A catalog that does
    not exist yet is made only with ``create_catalog``."""
    if _not_text("create", "client name", name):
        return 2
    catalog = await _open(settings, "create", create=create_catalog)
    if catalog is None:
        return 1
    try:
        before = await catalog.find_client_by_name(name)
        client, token = await issue_token(catalog, name, admin=admin)
    finally:
        await catalog.close()
    print(token)
    print(role_note(before, client), file=sys.stderr)
    return 0


def token_table(tokens: list[TokenRecord], *, revoked: bool) -> str:
    """The tokens as aligned text columns (never the token itself: only its hash is kept)."""
    header = ["CLIENT", "ADMIN", "CREATED", "LAST USED"] + (["REVOKED"] if revoked else [])
    rows = [header]
    for t in tokens:
        row = [
            t.client_name,
            "yes" if t.is_admin else "no",
            _when(t.created_at),
            _when(t.last_used_at) or "never",
        ]
        if revoked:
            row.append(_when(t.revoked_at) or "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _when(stamp: str | None) -> str:
    # 2026-01-02T03:04:05.678Z -> 2026-01-02 03:04:05Z: to the second is enough to read.
    return f"{stamp[:10]} {stamp[11:19]}Z" if stamp else ""


async def list_tokens(settings: Settings, *, revoked: bool = False) -> int:
    """Print every live token's client, role and times (``revoked``: revoked ones too)."""
    catalog = await _open(settings, "list")
    if catalog is None:
        return 1
    try:
        tokens = await catalog.list_tokens(revoked=revoked)
    finally:
        await catalog.close()
    print(token_table(tokens, revoked=revoked))
    return 0


async def revoke(settings: Settings, token: str | None, client_name: str | None) -> int:
    """Revoke one token, or every token of a client."""
    if not token and not client_name:
        print("filmstrip token revoke: give a token or --client NAME", file=sys.stderr)
        return 2
    if _not_text("revoke", "token", token) or _not_text("revoke", "client name", client_name):
        return 2
    catalog = await _open(settings, "revoke")
    if catalog is None:
        return 1
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
