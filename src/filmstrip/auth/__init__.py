"""Authentication primitives shared by api and bus (both check tokens against the catalog)."""

from filmstrip.auth.tokens import hash_token, new_token

__all__ = ["hash_token", "new_token"]
