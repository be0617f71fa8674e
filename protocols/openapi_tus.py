"""The tus 1.0 resumable-upload routes (``/v1/uploads``) for the OpenAPI document."""

from __future__ import annotations

from typing import Any

_REF = "#/components/schemas/{name}"


def _header(
    name: str, description: str, *, required: bool = True, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="ErrorBody")}}},
    }


def _answer(description: str, *headers: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {name: {"schema": {"type": "string"}} for name in headers},
    }


_B64 = "[A-Za-z0-9+/]"
_CHECKSUM = {
    "type": "string",
    "pattern": f"^(sha1 {_B64}{{27}}=|sha256 {_B64}{{43}}=|md5 {_B64}{{22}}==)$",
}
_RESUMABLE = _header(
    "Tus-Resumable", "must be 1.0.0 (412 otherwise)", schema={"type": "string", "enum": ["1.0.0"]}
)
_UPLOAD_ID = {
    "name": "upload_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}
_COMMON = {
    "401": _error("missing, unknown or revoked token"),
    "404": _error("no such upload for this client, or it expired"),
    "412": _error("Tus-Resumable is missing or not 1.0.0"),
}
_CHUNK_BODY = {
    "required": False,
    "content": {
        "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
    },
}
_DONE_HEADERS = ("Upload-Offset", "Upload-Expires", "Filmstrip-Photo-Id", "Filmstrip-Duplicate")


def tus_paths() -> dict[str, Any]:
    """``/v1/uploads`` and ``/v1/uploads/{upload_id}``."""
    return {
        "/v1/uploads": {
            "options": {
                "summary": "tus discovery: version, extensions, size limit, checksums",
                "security": [],
                "responses": {
                    "204": _answer(
                        "what the server supports",
                        "Tus-Version",
                        "Tus-Extension",
                        "Tus-Max-Size",
                        "Tus-Checksum-Algorithm",
                    )
                },
            },
            "post": {
                "summary": "tus creation (and creation-with-upload)",
                "parameters": [
                    _RESUMABLE,
                    _header(
                        "Upload-Length",
                        "the file's size in bytes",
                        schema={"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
                    ),
                    _header(
                        "Upload-Metadata",
                        "comma-separated 'key base64(value)': filename (kept on the photo),"
                        " filetype (ignored: the type is read from the bytes), session_id,"
                        " pipeline (full_processing, quick_processing), priority (1 first to"
                        " 10 last; ahead of the default needs an admin token)",
                        required=False,
                    ),
                    _header(
                        "Upload-Checksum",
                        "for a body: '<sha1|sha256|md5> <b64>'",
                        required=False,
                        schema=_CHECKSUM,
                    ),
                ],
                "requestBody": _CHUNK_BODY,
                "responses": {
                    "201": _answer("created", "Location", "Upload-Expires", "Upload-Offset"),
                    "400": _error(
                        "bad or missing Upload-Length or Upload-Metadata, empty file, unknown"
                        " pipeline (`unknown_pipeline`), priority not 1-10 (`bad_priority`)"
                    ),
                    "403": _error(
                        "a priority ahead of the default from a non-admin token"
                        " (`priority_not_allowed`)"
                    ),
                    **_COMMON,
                    "413": _error(
                        "Upload-Length over Tus-Max-Size (`too_large`), past the declared bytes"
                        " the client's unfinished uploads may hold (`open_uploads_too_large`),"
                        " or past its quota (`quota_exceeded`)"
                    ),
                    "415": _error("the first bytes are not a supported photo"),
                    "429": _error(
                        "the client has the most unfinished uploads it may hold"
                        " (`too_many_open_uploads`), or is over its request rate"
                    ),
                    "460": _error("the body does not match Upload-Checksum"),
                    "503": _error("queue unavailable or full"),
                },
            },
        },
        "/v1/uploads/{upload_id}": {
            "head": {
                "summary": "tus: where to resume",
                "parameters": [_UPLOAD_ID, _RESUMABLE],
                "responses": {
                    "200": _answer(
                        "the committed offset", "Upload-Length", "Upload-Metadata", *_DONE_HEADERS
                    ),
                    **_COMMON,
                },
            },
            "get": {
                "summary": "The upload's progress and, once finished, its photo (JSON)",
                "parameters": [_UPLOAD_ID],
                "responses": {
                    "200": {
                        "description": "the upload",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(name="TusUploadStatus")}
                            }
                        },
                    },
                    "401": _COMMON["401"],
                    "404": _COMMON["404"],
                },
            },
            "patch": {
                "summary": "tus: append bytes at Upload-Offset; the last chunk makes the photo",
                "parameters": [
                    _UPLOAD_ID,
                    _RESUMABLE,
                    _header(
                        "Upload-Offset",
                        "must equal the committed offset (409 otherwise)",
                        schema={"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$"},
                    ),
                    _header(
                        "Upload-Checksum",
                        "'<sha1|sha256|md5> <base64 digest>'",
                        required=False,
                        schema=_CHECKSUM,
                    ),
                ],
                "requestBody": {**_CHUNK_BODY, "required": True},
                "responses": {
                    "204": _answer("appended (photo headers once finished)", *_DONE_HEADERS),
                    "400": _error("bad header"),
                    **_COMMON,
                    "409": _error("Upload-Offset is not the committed offset"),
                    "410": _error(
                        "the server lost part of the upload's stored bytes (`upload_truncated`,"
                        " `upload_incomplete`), or its S3 multipart upload was aborted behind"
                        " its back (`upload_parts_lost`), or it used every S3 part number"
                        " (`too_many_parts`): the upload was dropped; start it again"
                    ),
                    "413": _error(
                        "the body runs past Upload-Length (`exceeds_length`), or the complete"
                        " upload does not fit the client's quota (`quota_exceeded`; it is kept:"
                        " make room, then an empty PATCH finishes it)"
                    ),
                    "415": _error("not application/offset+octet-stream, or not a photo"),
                    "460": _error("the chunk does not match Upload-Checksum; discarded"),
                    "503": _error("another request is writing this upload; retry"),
                },
            },
            "delete": {
                "summary": "tus termination: forget the upload and its bytes",
                "parameters": [_UPLOAD_ID, _RESUMABLE],
                "responses": {"204": {"description": "terminated"}, **_COMMON},
            },
        },
    }
