"""The HTTP API as an OpenAPI 3.1 document, built from the same Structs the code uses.

The paths come in sections, one per area of the api (:data:`SECTIONS`); an area adds its
routes by adding a section. ``tests/api/test_openapi.py`` fails when the running routes
and this document disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from filmstrip.protocols.formats import CONTENT_TYPES
from filmstrip.protocols.http import (
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    ErrorBody,
    HashCheck,
    HashCheckResult,
    Health,
    Photo,
    PhotoPage,
    QueueControl,
    QueueJobDetail,
    QueueJobPage,
    QueueOverview,
    Readiness,
    RetryAccepted,
    Session,
    SessionCreated,
    TusUploadStatus,
    UploadAccepted,
)
from filmstrip.protocols.jobs import PIPELINE_NAMES
from filmstrip.protocols.openapi_tus import tus_paths
from filmstrip.protocols.web import ClientConfig, Dashboard

_REF = "#/components/schemas/{name}"
#: What an upload may be (by its bytes).
PHOTO_TYPES = tuple(CONTENT_TYPES.values())

#: Every Struct the document refers to by name.
SCHEMA_TYPES: tuple[type[msgspec.Struct], ...] = (
    ErrorBody,
    UploadAccepted,
    Photo,
    PhotoPage,
    HashCheck,
    HashCheckResult,
    RetryAccepted,
    SessionCreated,
    Session,
    QueueOverview,
    QueueJobPage,
    QueueJobDetail,
    QueueControl,
    Health,
    Readiness,
    TusUploadStatus,
    ClientConfig,
    Dashboard,
)


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


def _retry_later(description: str) -> dict[str, Any]:
    return {
        **_error(description),
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        },
    }


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_PHOTO_ID = _path_param("photo_id", {"type": "string", "format": "uuid"})
_BINARY = {
    "description": "the bytes",
    "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
}
_SIGNED = [
    {"name": "exp", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"}},
]
_RANGE = [
    {
        "name": "Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "examples": ["bytes=1048576-"]},
        "description": "one byte range (`bytes=first-[last]` or `bytes=-suffix`); several,"
        " or one not of that form, get the whole file",
    },
    {
        "name": "If-Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "the ETag of the copy the range continues; another gets all of it",
    },
]
_PARTIAL = {
    **_BINARY,
    "description": "the range asked for",
    "headers": {
        "Content-Range": {
            "description": "`bytes first-last/size`",
            "schema": {"type": "string"},
        }
    },
}
_NOT_SATISFIABLE = {
    **_error("the range starts past the end (`range_not_satisfiable`)"),
    "headers": {
        "Content-Range": {
            "description": "`bytes */size`",
            "schema": {"type": "string"},
        }
    },
}
_NO_CONTENT = {"204": {"description": "done; no body"}}
_AUTH_ERRORS = {
    "401": _error("missing, unknown or revoked token"),
    "429": _error("over the client's or address's request rate; see Retry-After"),
}
_ADMIN_ERRORS = {**_AUTH_ERRORS, "403": _error("the token is not an admin token (`forbidden`)")}
_UNAVAILABLE = {"503": _retry_later("Redis, the catalog or the blob store is unreachable")}
_LIMIT = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX, "default": PAGE_SIZE_DEFAULT},
    f"page size; over {PAGE_SIZE_MAX} is 400 `bad_limit`",
)

_DATE_OR_DATE_TIME = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}


def _health_paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": _json("Health", "the process is up")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis, catalog and blob store reachable",
                "security": [],
                "responses": {
                    "200": _json("Readiness", "ready"),
                    "503": _json("Readiness", "a dependency is unreachable"),
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the OpenAPI 3.1 document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def _photo_paths() -> dict[str, Any]:
    return {
        "/v1/photos": {
            "get": {
                "summary": "The client's photos, newest first, in keyset pages",
                "description": "Pages are stable under concurrent uploads: a photo is "
                "never skipped or repeated while paging. Photos without a date taken "
                "come last under sort=taken, newest upload first.",
                "parameters": [
                    _LIMIT,
                    _query(
                        "cursor",
                        {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                        "`next_cursor` of the previous page (opaque; a cursor the server "
                        "did not make is 400 `bad_cursor`)",
                    ),
                    _query(
                        "status",
                        {"enum": ["queued", "processing", "completed", "failed"]},
                        "only photos in this status",
                    ),
                    _query(
                        "session_id",
                        {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                        "only photos of this upload session",
                    ),
                    _query(
                        "taken_after",
                        _DATE_OR_DATE_TIME,
                        "ISO 8601 date or date-time (camera wall-clock time); inclusive",
                    ),
                    _query(
                        "taken_before",
                        _DATE_OR_DATE_TIME,
                        "ISO 8601 date or date-time (camera wall-clock time); exclusive",
                    ),
                    _query(
                        "sort",
                        {"enum": ["uploaded", "taken"], "default": "uploaded"},
                        "order by upload time or by date taken, newest first",
                    ),
                    _query(
                        "q",
                        {"type": "string", "maxLength": 255},
                        "only photos whose file name contains this, in any case",
                    ),
                ],
                "responses": {
                    "200": _json("PhotoPage", "one page"),
                    "400": _error("bad limit, cursor, status, session id, date, sort or q"),
                    **_AUTH_ERRORS,
                    "404": _error(
                        "`session_not_found`: the session is another client's or does not exist"
                    ),
                    **_UNAVAILABLE,
                },
            },
            "post": {
                "summary": "Upload a photo (multipart, streamed)",
                "parameters": [
                    {
                        "name": "X-Content-SHA256",
                        "in": "header",
                        "required": False,
                        "description": "hex SHA-256 of the file: a duplicate is answered "
                        "before the body is read, and a body that does not match is refused",
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
                                "additionalProperties": False,
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "session_id": {
                                        "type": "string",
                                        "pattern": "^[A-Za-z0-9_-]{1,64}$",
                                    },
                                    "pipeline": {
                                        "enum": list(PIPELINE_NAMES),
                                        "description": "the named pipeline to run (default:"
                                        " FILMSTRIP_DEFAULT_PIPELINE)",
                                    },
                                    "priority": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": 10,
                                        "description": "1 runs first, 10 last (default:"
                                        " FILMSTRIP_JOB_PRIORITY); ahead of the default"
                                        " needs an admin token",
                                    },
                                },
                            },
                            # The type is read from the file's leading bytes, not from
                            # this or the file name; anything else is 415.
                            "encoding": {"file": {"contentType": ", ".join(PHOTO_TYPES)}},
                        }
                    },
                },
                "responses": {
                    "201": _json("UploadAccepted", "accepted and queued"),
                    "200": _json("UploadAccepted", "the client already has these bytes"),
                    "400": _error(
                        "empty file, missing field, malformed body, the bytes do not match "
                        "X-Content-SHA256 (`checksum_mismatch`), an unknown pipeline "
                        "(`unknown_pipeline`) or a priority not 1-10 (`bad_priority`)"
                    ),
                    "403": _error(
                        "a priority ahead of the default from a non-admin token"
                        " (`priority_not_allowed`)"
                    ),
                    "408": _error("the body stalled or arrived too slowly"),
                    **_AUTH_ERRORS,
                    "404": _error("the named upload session does not exist"),
                    "413": _error(
                        "over the size limit (`too_large`) or the client's quota of stored"
                        " originals (`quota_exceeded`)"
                    ),
                    "415": _error("not a supported photo type, or a Content-Encoding"),
                    "503": _retry_later(
                        "queue, blob store or catalog unavailable, or queue full (`queue_full`)"
                    ),
                },
            },
        },
        "/v1/photos/check": {
            "post": {
                "summary": "Which of these SHA-256 digests the client already has",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(name="HashCheck")}}
                    },
                },
                "responses": {
                    "200": _json("HashCheckResult", "digest → existing photo id"),
                    "400": _error(
                        "`bad_json`: not JSON, or not of the shape"
                        ' `{"sha256": [64-hex-digit digests]}`'
                    ),
                    **_AUTH_ERRORS,
                    "413": _error("`too_large`: over 1000 digests, or a body over 128 KiB"),
                    **_UNAVAILABLE,
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
                    **_UNAVAILABLE,
                },
            },
            "delete": {
                "summary": "Delete a photo, its original, its derivatives and a waiting job",
                "description": "Idempotent in effect: a second call answers 404 "
                "`photo_not_found`. A worker mid-job for the photo discards its results. "
                "The client's sockets on the bus then get `photo.deleted`.",
                "parameters": [_PHOTO_ID],
                "responses": {
                    **_NO_CONTENT,
                    **_AUTH_ERRORS,
                    "404": _error("no such photo for this client (or already deleted)"),
                    **_UNAVAILABLE,
                },
            },
        },
        "/v1/photos/{photo_id}/retry": {
            "post": {
                "summary": "Queue a failed photo again",
                "parameters": [_PHOTO_ID],
                "responses": {
                    "202": _json("RetryAccepted", "queued again"),
                    **_AUTH_ERRORS,
                    "404": _error("no such photo for this client"),
                    "409": _error(
                        "the photo has not failed (`not_failed`), or failed for a reason a "
                        "retry cannot help (`not_retryable`: a DATA failure)"
                    ),
                    **_UNAVAILABLE,
                },
            }
        },
        "/v1/photos/{photo_id}/original": {
            "get": {
                "summary": "The original bytes (bearer token or signed URL)",
                "parameters": [_PHOTO_ID, *_SIGNED, *_RANGE],
                "security": [{"bearer": []}, {}],
                "responses": {
                    "200": {
                        **_BINARY,
                        "headers": {
                            "Content-Disposition": {
                                "description": "attachment, named as the file was sent"
                                " (RFC 6266: an ASCII `filename`, and `filename*` in UTF-8"
                                " when the name is not ASCII), else `<photo_id>.<ext>`",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "206": _PARTIAL,
                    "304": {"description": "not modified"},
                    **_AUTH_ERRORS,
                    "403": _error("bad or expired signature"),
                    "404": _error("no such photo for this client"),
                    "416": _NOT_SATISFIABLE,
                    **_UNAVAILABLE,
                },
            }
        },
        "/v1/photos/{photo_id}/derivatives/{name}": {
            "get": {
                "summary": "One derivative (thumbnail, preview, optimized)",
                "parameters": [
                    _PHOTO_ID,
                    _path_param("name", {"type": "string"}),
                    *_SIGNED,
                    *_RANGE,
                ],
                "security": [{"bearer": []}, {}],
                "responses": {
                    "200": _BINARY,
                    "206": _PARTIAL,
                    "304": {"description": "not modified"},
                    **_AUTH_ERRORS,
                    "403": _error("bad or expired signature"),
                    "404": _error("no such photo or derivative"),
                    "416": _NOT_SATISFIABLE,
                    "503": _retry_later(
                        "Redis, the catalog or the blob store is unreachable; or the"
                        " derivative was found short or missing and is being made again"
                        " (`derivative_remaking`)"
                    ),
                },
            }
        },
    }


def _session_paths() -> dict[str, Any]:
    return {
        "/v1/sessions": {
            "post": {
                "summary": "Start an upload session (name it as `session_id` on uploads)",
                "responses": {
                    "201": _json("SessionCreated", "the new session"),
                    **_AUTH_ERRORS,
                    **_UNAVAILABLE,
                },
            }
        },
        "/v1/sessions/{session_id}": {
            "get": {
                "summary": "A session: photo counts by status and photo ids",
                "parameters": [_path_param("session_id", {"type": "string"})],
                "responses": {
                    "200": _json("Session", "the session"),
                    **_AUTH_ERRORS,
                    "404": _error("no such session for this client"),
                    **_UNAVAILABLE,
                },
            }
        },
    }


def _queue_paths() -> dict[str, Any]:
    base = "/v1/queues/photo-processing"
    job_id = _path_param("job_id", {"type": "string"})
    return {
        base: {
            "get": {
                "summary": "Jobs per state and throughput over 1 h, 24 h and 7 d (admin)",
                "responses": {
                    "200": _json("QueueOverview", "the queue"),
                    **_ADMIN_ERRORS,
                    **_UNAVAILABLE,
                },
            }
        },
        f"{base}/jobs": {
            "get": {
                "summary": "One page of jobs in a state, failed by default (admin)",
                "parameters": [
                    _query(
                        "state",
                        {
                            "enum": [
                                "waiting",
                                "delayed",
                                "active",
                                "completed",
                                "failed",
                                "retrying",
                            ],
                            "default": "failed",
                        },
                        "job state: `failed` is dead-lettered (failed for good); `retrying` is"
                        " a job whose last run failed and that runs again (active or delayed)",
                    ),
                    _query(
                        "offset",
                        {"type": "integer", "minimum": 0, "maximum": 1_000_000_000, "default": 0},
                        "jobs to skip",
                    ),
                    _LIMIT,
                ],
                "responses": {
                    "200": _json("QueueJobPage", "one page"),
                    "400": _error("bad state, offset or limit"),
                    **_ADMIN_ERRORS,
                    **_UNAVAILABLE,
                },
            }
        },
        f"{base}/jobs/{{job_id}}": {
            "get": {
                "summary": "One job: its payload, its runs with each stage's time, its photo"
                " (admin)",
                "parameters": [job_id],
                "responses": {
                    "200": _json("QueueJobDetail", "the job"),
                    **_ADMIN_ERRORS,
                    "404": _error("no job with this id (`job_not_found`)"),
                    **_UNAVAILABLE,
                },
            },
            "delete": {
                "summary": "Remove a failed job (its photo stays failed) (admin)",
                "parameters": [job_id],
                "responses": {
                    **_NO_CONTENT,
                    **_ADMIN_ERRORS,
                    "404": _error("no failed job with this id"),
                    **_UNAVAILABLE,
                },
            },
        },
        f"{base}/jobs/{{job_id}}/retry": {
            "post": {
                "summary": "Send a failed job back to waiting and its photo to queued (admin)",
                "parameters": [job_id],
                "responses": {
                    "202": _json("RetryAccepted", "waiting again"),
                    **_ADMIN_ERRORS,
                    "404": _error("no failed job with this id"),
                    **_UNAVAILABLE,
                },
            }
        },
        f"{base}/pause": {
            "post": {
                "summary": "Workers take no new jobs; running ones finish (admin)",
                "responses": {
                    "200": _json("QueueControl", "paused"),
                    **_ADMIN_ERRORS,
                    **_UNAVAILABLE,
                },
            }
        },
        f"{base}/resume": {
            "post": {
                "summary": "Workers take jobs again (admin)",
                "responses": {
                    "200": _json("QueueControl", "running"),
                    **_ADMIN_ERRORS,
                    **_UNAVAILABLE,
                },
            }
        },
    }


#: One builder per area of the api; the tus uploads area (/v1/uploads) adds its own.
SECTIONS: tuple[Callable[[], dict[str, Any]], ...] = (
    _health_paths,
    _photo_paths,
    _session_paths,
    _queue_paths,
    tus_paths,
    lambda: web_paths(),  # defined below, with the web area's routes
)


def paths() -> dict[str, Any]:
    """Every route of the api."""
    merged: dict[str, Any] = {}
    for section in SECTIONS:
        for path, operations in section().items():
            clash = set(merged.get(path, {})) & set(operations)
            if clash:
                raise ValueError(f"{path} {sorted(clash)} is documented twice")
            merged.setdefault(path, {}).update(operations)
    for path, operations in merged.items():
        for method, op in operations.items():
            operations[method] = _with_edge_rules(path, op)
    return merged


# Answers any route may give before its handler runs (services/api/edge.py, the rate
# limiter, aiohttp's parser through filmstrip/compat/aiohttp.py).
_MALFORMED = (
    "a malformed request (`bad_request`): a URL holding control characters, a Host that is"
    " not a host name, or what the HTTP parser refuses"
)
_BUSY = "the process is out of Redis connections (`server_busy`)"
_PROBES = ("/healthz", "/readyz", "/metrics")
# The edge refuses a URL whose decoded path or query holds a control character.
_TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"


def _with_edge_rules(path: str, op: dict[str, Any]) -> dict[str, Any]:
    """``op`` with what the edge adds to every route (built anew: sections share parts)."""
    params = []
    for param in op.get("parameters", []):
        schema = param["schema"]
        if (
            param["in"] in ("path", "query")
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & set(schema)
        ):
            param = {**param, "schema": {**schema, "pattern": _TEXT_PATTERN}}
        params.append(param)
    responses = dict(op["responses"])
    responses["400"] = _also(responses.get("400"), _error(_MALFORMED))
    if path not in _PROBES:  # never rate limited
        responses["503"] = _also(responses.get("503"), _retry_later(_BUSY))
    return {**op, **({"parameters": params} if params else {}), "responses": responses}


def _also(documented: dict[str, Any] | None, edge: dict[str, Any]) -> dict[str, Any]:
    if documented is None:
        return edge
    return {**documented, "description": f"{documented['description']}; or {edge['description']}"}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    _, components = msgspec.json.schema_components(SCHEMA_TYPES, ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Filmstrip API",
            "version": "1",
            "description": "Upload photos, follow their processing, fetch derivatives. "
            'Every error is {"error": {"code", "message"}}; `code` is stable and '
            "machine-readable.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API token from `filmstrip token create <client>`",
                }
            },
        },
    }


# --- web area: what the gallery and dashboard pages read (services/api/web.py) ----------


def web_paths() -> dict[str, Any]:
    """The gallery and dashboard pages, their static files, and what they read."""
    html = {
        "200": {
            "description": "the page (HTML; its scripts sign in with a token)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    }
    return {
        "/": {"get": {"summary": "The photo gallery", "security": [], "responses": html}},
        "/photos/{photo_id}": {
            "get": {
                "summary": "The gallery page opened on one photo (its link to share)",
                "security": [],
                "parameters": [_PHOTO_ID],
                "responses": html,
            }
        },
        "/dashboard": {
            "get": {"summary": "The queue dashboard", "security": [], "responses": html}
        },
        "/static/{path}": {
            "get": {
                "summary": "The pages' scripts, styles and icons",
                "security": [],
                "parameters": [
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the file"},
                    "404": _error("no such file"),
                },
            }
        },
        "/docs": {
            "get": {
                "summary": "Interactive documentation of this API (Swagger UI)",
                "security": [],
                "responses": html,
            }
        },
        "/docs/assets/{name}": {
            "get": {
                "summary": "Swagger UI's script, style and icon, served from the package",
                "security": [],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the file"},
                    "404": _error("no such asset"),
                },
            }
        },
        "/v1/config": {
            "get": {
                "summary": "Public client configuration: where the event bus listens",
                "security": [],
                "responses": {"200": _json("ClientConfig", "the configuration")},
            }
        },
        "/v1/dashboard": {
            "get": {
                "summary": (
                    "Job and photo counts, an hour of throughput and stage times, bus processes"
                ),
                "responses": {
                    "200": _json("Dashboard", "the dashboard's figures"),
                    **_AUTH_ERRORS,
                    "403": _error("not an admin token"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format 0.0.4)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
