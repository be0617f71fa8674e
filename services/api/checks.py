"""``POST /v1/photos/check``: which of a batch of SHA-256 digests the client already has,
so a client syncing a camera roll uploads only what is new."""

from __future__ import annotations

import msgspec
from aiohttp import web

from filmstrip.protocols.http import HashCheck, HashCheckResult
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.json import json_response
from filmstrip.services.api.middleware import client_of
from filmstrip.services.api.state import state_of

_decoder = msgspec.json.Decoder(HashCheck)
# 1000 digests of 64 hex digits in JSON fit easily; anything larger is not a valid batch.
MAX_BODY = 128 * 1024


async def check_hashes(request: web.Request) -> web.StreamResponse:
    """``{"sha256": [...]}`` (up to 1000) → ``{"existing": {digest: photo_id}}``."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", "send at most 1000 digests per request")
    raw = await _body(request)
    try:
        check = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad_request", f"invalid body: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad_json", 'send JSON: {"sha256": ["<64 hex digits>", ...]}') from None
    hashes = sorted({h.lower() for h in check.sha256})
    existing = await state_of(request).catalog.existing_sha256(client_of(request).id, hashes)
    return json_response(HashCheckResult(existing=existing), headers={"Cache-Control": "no-store"})


async def _body(request: web.Request) -> bytes:
    """The whole body, up to MAX_BODY (413 past it). One ``read(n)`` returns what has
    arrived so far, which for a body in several TCP segments is only its start."""
    raw = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, "too_large", "send at most 1000 digests per request")
    return bytes(raw)
