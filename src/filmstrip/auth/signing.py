"""Expiring HMAC-signed URLs, so ``<img src>`` works in a browser without headers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path


def sign(secret: bytes, path: str, expires: int) -> str:
    """The signature of ``path`` valid until the epoch second ``expires``."""
    mac = hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256)
    return mac.hexdigest()[:43]


def signed_query(secret: bytes, path: str, ttl_s: int, *, now: float | None = None) -> str:
    """``path?exp=…&sig=…`` for ``ttl_s`` seconds from now (rounded up to the minute so
    repeated answers share cacheable URLs)."""
    moment = int(now if now is not None else time.time())
    expires = (moment + ttl_s + 59) // 60 * 60
    return f"{path}?exp={expires}&sig={sign(secret, path, expires)}"


def verify(secret: bytes, path: str, exp: str, sig: str, *, now: float | None = None) -> bool:
    """True when ``sig`` signs ``path`` and ``exp`` has not passed."""
    try:
        expires = int(exp)
    except ValueError:
        return False
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(sign(secret, path, expires), sig)


def load_or_create_secret(configured: str, data_dir: str) -> bytes:
    """The configured secret, else one kept in ``<data_dir>/signing.key`` (embedded mode)."""
    if configured:
        return configured.encode()
    path = Path(data_dir) / "signing.key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(value)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path.read_bytes().strip()
