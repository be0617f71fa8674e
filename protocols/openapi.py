"""The HTTP API as an OpenAPI 3.1 document, built from the same Structs the code uses."""

from __future__ import annotations

from typing import Any

import msgspec

from protocols.http import ErrorBody, Photo, UploadAccepted

_REF = "#/components/schemas/{name}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="ErrorBody")}}},
    }


def _json(name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(name=name)}}},
    }


_PHOTO_ID = {
    "name": "photo_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_BINARY = {
    "description": "the bytes",
    "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
}
_SIGNED = [
    {"name": "exp", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"}},
]
_AUTH_ERRORS = {
    "401": _error("missing, unknown or revoked token"),
    "429": _error("over the client's or address's request rate; see Retry-After"),
}


def paths() -> dict[str, Any]:
    """Every route of the api."""
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": {"description": "the process is up"}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis, catalog and blob store reachable",
                "security": [],
                "responses": {
                    "200": {"description": "ready"},
                    "503": {"description": "a dependency is unreachable"},
                },
            }
        },
        "/v1/photos": {
            "post": {
                "summary": "Upload a photo (multipart, streamed)",
                "parameters": [
                    {
                        "name": "X-Content-SHA256",
                        "in": "header",
                        "required": False,
                        "description": "hex SHA-256 of the file: a duplicate is answered "
                        "before the body is read",
                        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "session_id": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json("UploadAccepted", "accepted and queued"),
                    "200": _json("UploadAccepted", "the client already has these bytes"),
                    "400": _error("empty file, missing field or malformed body"),
                    "408": _error("the body stalled or arrived too slowly"),
                    **_AUTH_ERRORS,
                    "404": _error("the named upload session does not exist"),
                    "413": _error("over the size limit"),
                    "415": _error("not a supported photo type, or a Content-Encoding"),
                    "503": _error("queue, blob store or catalog unavailable, or queue full"),
                },
            }
        },
        "/v1/photos/{photo_id}": {
            "get": {
                "summary": "A photo: status, metadata and signed derivative URLs",
                "parameters": [_PHOTO_ID],
                "responses": {
                    "200": _json("Photo", "the photo"),
                    **_AUTH_ERRORS,
                    "404": _error("no such photo for this client"),
                },
            }
        },
        "/v1/photos/{photo_id}/original": {
            "get": {
                "summary": "The original bytes (bearer token or signed URL)",
                "parameters": [_PHOTO_ID, *_SIGNED],
                "security": [{"bearer": []}, {}],
                "responses": {
                    "200": _BINARY,
                    "304": {"description": "not modified"},
                    **_AUTH_ERRORS,
                    "403": _error("bad or expired signature"),
                    "404": _error("no such photo for this client"),
                },
            }
        },
        "/v1/photos/{photo_id}/derivatives/{name}": {
            "get": {
                "summary": "One derivative (thumbnail, preview, optimized)",
                "parameters": [
                    _PHOTO_ID,
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    *_SIGNED,
                ],
                "security": [{"bearer": []}, {}],
                "responses": {
                    "200": _BINARY,
                    "304": {"description": "not modified"},
                    **_AUTH_ERRORS,
                    "403": _error("bad or expired signature"),
                    "404": _error("no such photo or derivative"),
                },
            }
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    _, components = msgspec.json.schema_components(
        [ErrorBody, UploadAccepted, Photo], ref_template=_REF
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Filmstrip API",
            "version": "1",
            "description": "Upload photos, follow their processing, fetch derivatives. "
            'Every error is {"error": {"code", "message"}}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
