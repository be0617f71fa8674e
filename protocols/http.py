"""Bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

import msgspec


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Every non-2xx answer: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


class UploadAccepted(msgspec.Struct, frozen=True, kw_only=True):
    photo_id: str
    job_id: str
    status: str
    duplicate: bool = False


class Derivative(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    url: str
    content_type: str
    width: int
    height: int
    bytes: int


class Photo(msgspec.Struct, frozen=True, kw_only=True):
    photo_id: str
    status: str
    client_id: str
    session_id: str | None
    content_type: str
    bytes: int
    sha256: str | None
    uploaded_at: str
    processed_at: str | None
    original_url: str
    derivatives: list[Derivative]
    metadata: dict[str, Any] | None
    error: str | None


# --- Resumable uploads (tus, services/api/tus) ----------------------------------------


class TusUploadStatus(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/uploads/{id}``: a tus upload's progress and, once finished, its photo."""

    upload_id: str
    #: ``receiving`` (bytes missing), ``complete`` (all bytes, not yet a photo) or ``done``.
    state: str
    offset: int
    length: int
    expires_at: str
    metadata: dict[str, str]
    photo_id: str | None = None
    duplicate: bool = False
