"""Where a photo's original and derivatives are fetched: signed URLs that work without a
token, the same in the api's answers and in the events the worker publishes."""

from __future__ import annotations

from collections.abc import Iterable

from filmstrip.auth.signing import signed_query
from filmstrip.catalog import DerivativeRecord
from filmstrip.protocols.events import Derivative


def original_url(secret: bytes, photo_id: str, ttl_s: int) -> str:
    """The signed URL of the photo's original, valid ``ttl_s`` seconds."""
    return signed_query(secret, f"/v1/photos/{photo_id}/original", ttl_s)


def derivative_url(secret: bytes, photo_id: str, name: str, ttl_s: int) -> str:
    """The signed URL of one of the photo's derivatives, valid ``ttl_s`` seconds."""
    return signed_query(secret, f"/v1/photos/{photo_id}/derivatives/{name}", ttl_s)


def derivatives(
    secret: bytes, photo_id: str, records: Iterable[DerivativeRecord], ttl_s: int
) -> list[Derivative]:
    """Each derivative with its signed URL (valid ``ttl_s`` seconds), size and type."""
    return [
        Derivative(
            name=d.name,
            url=derivative_url(secret, photo_id, d.name, ttl_s),
            content_type=d.content_type,
            width=d.width,
            height=d.height,
            bytes=d.bytes,
        )
        for d in records
    ]
