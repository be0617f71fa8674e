"""Rows of the catalog, as typed Structs."""

from __future__ import annotations

from typing import Any

import msgspec


class PhotoStatus:
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    ALL = ("queued", "processing", "completed", "failed")


class DerivativeRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    key: str
    content_type: str
    width: int
    height: int
    bytes: int


class PhotoRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    client_id: str
    session_id: str | None
    blob_key: str
    content_type: str
    bytes: int
    sha256: str | None
    status: str
    job_id: str
    trace_id: str
    uploaded_at: str
    taken_at: str | None = None
    processed_at: str | None = None
    processing_metadata: dict[str, Any] | None = None
    derivatives: list[DerivativeRecord] = msgspec.field(default_factory=list)
    processing_error: str | None = None
    error_category: str | None = None
    error_code: str | None = None
    # The name the file was sent with, as the api kept it (services/api/filenames.py).
    filename: str | None = None
    # The upload's pipeline and priority (None: the settings' defaults when its job is made).
    pipeline: str | None = None
    priority: int | None = None
    # Stamped by the catalog from the database's clock on every write (it decides repairs).
    updated_at: str = ""


class OutboxEntry(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    photo_id: str
    payload: str
    priority: int
    # Stamped by the catalog from the database's clock when the entry is written.
    created_at: str = ""
    attempts: int = 0


class ClientRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    is_admin: bool
    created_at: str


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A token as ``filmstrip token list`` shows it: never the token, only its client and
    times (``last_used_at`` is stamped at most about once a minute)."""

    client_id: str
    client_name: str
    is_admin: bool
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    client_id: str
    created_at: str
