"""API tokens: random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "fst_"


def new_token() -> tuple[str, str]:
    """A fresh token and the hash to store for it."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    """The stored form of a token (tokens are high-entropy, so a plain hash suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()
