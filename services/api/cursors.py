"""Opaque keyset cursors for ``GET /v1/photos``: base64url of ``[sort, key, id]``.

The sort order is inside the cursor so a cursor cannot silently be reused with another
ordering, where its key would mean something else.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from filmstrip.services.api.edge import is_text

_decoder = msgspec.json.Decoder(tuple[str, str, str])


class BadCursor(ValueError):
    """The cursor was not made by :func:`encode_cursor` (or for another sort)."""


def encode_cursor(sort: str, key: str, photo_id: str) -> str:
    """The cursor that continues after the row ``(key, photo_id)`` in ``sort`` order."""
    raw = msgspec.json.encode((sort, key, photo_id))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: str) -> tuple[str, str]:
    """``(key, photo_id)`` of a cursor made for ``sort``; raises :class:`BadCursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, key, photo_id = _decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadCursor("the cursor is malformed") from None
    if not (is_text(key) and is_text(photo_id)):
        # No key or id a cursor is made of is other than text: its JSON escaped one.
        raise BadCursor("the cursor is malformed")
    if made_for != sort:
        raise BadCursor(f"the cursor belongs to sort={made_for!r}, not sort={sort!r}")
    return key, photo_id
