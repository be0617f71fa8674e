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

_SHAPE = 'send JSON: {"sha256": ["<64 hex digits>", ...]}'
_TOO_MANY = "send at most 1000 digests per request"
# 1000 digests of 64 hex digits in JSON fit easily; anything larger is not a valid batch.
MAX_BODY = 128 * 1024
MAX_DIGESTS = 1000


async def check_hashes(request: web.Request) -> web.StreamResponse:
    """``{"sha256": [...]}`` (up to 1000) → ``{"existing": {digest: photo_id}}``, each digest
    as the client sent it (any case), so the client finds the match under its own string."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", _TOO_MANY)
    check = _parse(await _body(request))
    hashes = sorted({h.lower() for h in check.sha256})
    found = await state_of(request).catalog.existing_sha256(client_of(request).id, hashes)
    existing = {sent: found[sent.lower()] for sent in check.sha256 if sent.lower() in found}
    return json_response(HashCheckResult(existing=existing), headers={"Cache-Control": "no-store"})


def _parse(raw: bytes) -> HashCheck:
    """The batch; 413 ``too_large`` over 1000 digests, else ``bad_json`` for a body that is
    not JSON or not of the batch's shape (as the error-code table says)."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ApiError(400, "bad_json", _SHAPE) from None
    digests = value.get("sha256") if isinstance(value, dict) else None
    if isinstance(digests, list) and len(digests) > MAX_DIGESTS:
        raise ApiError(413, "too_large", _TOO_MANY)
    try:
        return msgspec.convert(value, HashCheck)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad_json", f"{_SHAPE} ({exc})") from None


async def _body(request: web.Request) -> bytes:
    """The whole body, up to MAX_BODY (413 past it). One ``read(n)`` returns what has
    arrived so far, which for a body in several TCP segments is only its start."""
    raw = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(413, "too_large", _TOO_MANY)
    return bytes(raw)
