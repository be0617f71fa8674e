"""API tokens: unguessable, and kept only as a hash."""

from __future__ import annotations

import base64
import hashlib

from filmstrip.auth.tokens import TOKEN_PREFIX, hash_token, new_token


def test_a_token_holds_256_random_bits_and_is_stored_only_as_its_hash() -> None:
    """Tokens are checked by one hash lookup, with no per-token salt or slow hash: that
    is safe only while they cannot be guessed."""
    issued = [new_token() for _ in range(50)]
    for token, stored in issued:
        assert token.startswith(TOKEN_PREFIX)
        secret = token.removeprefix(TOKEN_PREFIX)
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32
        assert stored == hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len({token for token, _ in issued}) == len(issued)
