"""Expiring HMAC-signed URLs, so ``<img src>`` works in a browser without headers."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path

from filmstrip.catalog import Catalog
from filmstrip.concurrency import run_blocking

#: The catalog's name for the key of signed URLs (``service_secrets``).
SECRET_NAME = "url-signing"

# What sign() and signed_query() write: epoch seconds, and 43 lowercase hex digits. Checked
# before anything else, so int() never sees "1_0" or Arabic digits and compare_digest never
# a non-ASCII str (which it refuses with a TypeError).
_EXPIRES = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{43}", re.ASCII)


def sign(secret: bytes, path: str, expires: int) -> str:
    """The signature of ``path`` valid until the epoch second ``expires``."""
    # surrogatepass: a path holding lone surrogates (bytes that were not UTF-8) signs
    # instead of raising; no URL we issue has one, so its signature never matches.
    mac = hmac.new(secret, f"{path}\n{expires}".encode("utf-8", "surrogatepass"), hashlib.sha256)
    return mac.hexdigest()[:43]


def signed_query(secret: bytes, path: str, ttl_s: int, *, now: float | None = None) -> str:
    """``path?exp=…&sig=…`` for ``ttl_s`` seconds from now (rounded up to the minute so
    repeated answers share cacheable URLs)."""
    moment = int(now if now is not None else time.time())
    expires = (moment + ttl_s + 59) // 60 * 60
    return f"{path}?exp={expires}&sig={sign(secret, path, expires)}"


def verify(secret: bytes, path: str, exp: str, sig: str, *, now: float | None = None) -> bool:
    """True when ``sig`` signs ``path`` and ``exp`` has not passed; False for any other
    text, however hostile (it comes from a URL anyone can send)."""
    if not (_EXPIRES.fullmatch(exp) and _SIGNATURE.fullmatch(sig)):
        return False
    expires = int(exp)
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(sign(secret, path, expires).encode(), sig.encode())


async def load_signing_secret(configured: str, catalog: Catalog, data_dir: str) -> bytes:
    """The configured secret, else the one kept in the catalog, which every api process
    shares (made by the first to start). An embedded install's ``<data_dir>/signing.key``,
    where releases before kept it, becomes that key, so URLs it handed out stay valid."""
    if configured:
        return configured.encode()
    candidate = await run_blocking(_key_file, Path(data_dir) / "signing.key")
    stored = await catalog.service_secret(SECRET_NAME, candidate or secrets.token_hex(32))
    return stored.encode()


def _key_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
