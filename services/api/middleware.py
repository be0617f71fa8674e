"""Request middlewares: trace ids, JSON errors, and bearer-token authentication."""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from redis.exceptions import MaxConnectionsError, RedisError

from filmstrip.auth import hash_token
from filmstrip.catalog import ClientRecord
from filmstrip.compat.aiohttp import refusal_reason
from filmstrip.errors import PUBLIC_MESSAGES, FilmstripError
from filmstrip.events import new_trace_id
from filmstrip.http_errors import from_http_exception
from filmstrip.logs import trace_id_var
from filmstrip.services.api.edge import Handler, credentials_of, route_template
from filmstrip.services.api.errors import ApiError, error_response, from_filmstrip_error
from filmstrip.services.api.state import ApiState, state_of

log = logging.getLogger("filmstrip.api")

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")

CLIENT: web.RequestKey[ClientRecord] = web.RequestKey("client", ClientRecord)
TRACE_ID: web.RequestKey[str] = web.RequestKey("trace_id", str)


def trace_id_of(request: web.Request) -> str:
    """The request's trace id (from ``traceparent``, ``X-Trace-Id`` or fresh)."""
    return request[TRACE_ID]


@web.middleware
async def trace_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adopt an incoming W3C ``traceparent`` (or ``X-Trace-Id``), log the request with it."""
    incoming = request.headers.get("traceparent", "")
    match = _TRACEPARENT.match(incoming.strip().lower())
    trace_id = match.group(1) if match else None
    if trace_id is None:
        given = request.headers.get("X-Trace-Id", "")
        trace_id = given if re.fullmatch(r"[0-9a-fA-F]{16,32}", given) else new_trace_id()
    request[TRACE_ID] = trace_id
    token = trace_id_var.set(trace_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Trace-Id"] = trace_id
        return response
    finally:
        # A tus upload is a PATCH per chunk: those go to DEBUG unless they fail.
        log.log(
            logging.DEBUG if request.method == "PATCH" and status < 400 else logging.INFO,
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        trace_id_var.reset(token)


#: The status a request is logged and counted with when its client closed the connection
#: before any answer (nginx's convention); no client ever receives it.
CLIENT_CLOSED = 499


def client_gone(request: web.Request) -> bool:
    """Whether the request's client has closed its connection."""
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as ``{"error": {"code", "message"}}`` with a fitting status."""
    try:
        return await handler(request)
    except ApiError as exc:
        resp = error_response(exc.status, exc.code, exc.message, exc.headers)
    except FilmstripError as exc:
        api = from_filmstrip_error(exc)
        if api.status >= 500:
            log.warning("dependency failure: %s", exc, extra={"code": exc.code})
        resp = error_response(api.status, api.code, api.message, api.headers)
    except MaxConnectionsError as exc:
        # Redis answers, but this process has more calls in flight than connections.
        log.warning("out of redis connections: %s", exc)
        resp = error_response(
            503, "server_busy", "the server is busy; retry in a second", {"Retry-After": "1"}
        )
    except RedisError as exc:
        log.warning("redis unavailable: %s", exc)
        resp = error_response(
            503,
            "redis_unavailable",
            PUBLIC_MESSAGES["redis_unavailable"],
            {"Retry-After": "5"},
        )
    except HttpProcessingError as exc:
        # A malformed body the handler was parsing (e.g. control characters in a multipart
        # part's headers): the client's fault, not ours.
        status = exc.code if 400 <= exc.code < 500 else 400
        resp = error_response(
            status, "bad_request", f"malformed request: {refusal_reason(exc.message)}"
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = from_http_exception(exc)  # aiohttp's own 404/405/413, with 405's Allow
    except ConnectionResetError:
        if not client_gone(request):
            log.exception("unhandled error")  # a dependency's connection, not the client's
            resp = error_response(500, "internal", "internal server error")
        else:
            # The client closed its connection while the handler read the body (a phone
            # losing signal mid-upload): nothing failed here and no answer can reach it.
            # Logged and counted as nginx's 499 "client closed request", never a 5xx.
            log.debug("client closed the connection mid-request", extra={"path": request.path})
            resp = web.Response(status=CLIENT_CLOSED, reason="Client Closed Request")
    except Exception:
        log.exception("unhandled error")
        resp = error_response(500, "internal", "internal server error")
    resp.headers["X-Trace-Id"] = request.get(TRACE_ID, "")
    return resp


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve ``Authorization: Bearer <token>`` to a client for every ``/v1`` route.

    What is public is decided by the route the router matched, never by the decoded path,
    which can look like another route's (``/v1/photos/x%2Foriginal``)."""
    if _is_public(request):
        return await handler(request)
    credentials = credentials_of(request)
    if credentials is None:
        if _is_signed_blob_request(request):
            return await handler(request)
        raise ApiError(
            401,
            "unauthorized",
            "send an API token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="filmstrip"'},
        )
    token = credentials.token
    client = None
    state = state_of(request)
    if token is not None:
        token_hash = hash_token(token)
        client = await state.catalog.client_for_token(token_hash)
        if client is not None and state.token_use.due(token_hash):
            await _record_use(state, token_hash)
    if client is None:
        raise ApiError(
            401,
            "invalid_token",
            "the API token is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="filmstrip", error="invalid_token"'},
        )
    request[CLIENT] = client
    return await handler(request)


async def _record_use(state: ApiState, token_hash: str) -> None:
    """Stamp the token's last use (about once a minute); a failure costs only the stamp."""
    try:
        await state.catalog.record_token_use(token_hash, fresh_s=state.token_use.every_s)
    except (FilmstripError, OSError) as exc:
        log.warning("could not record a token's last use: %s", exc)


# Routes reachable without a token besides those outside /v1 (signed blob URLs check their
# own signature).
_PUBLIC_ROUTES = frozenset({"/v1/openapi.json", "/v1/config"})
# Only these routes verify a signature themselves; a ``sig`` anywhere else must not stand
# in for a token.
_SIGNED_BLOB_ROUTES = frozenset(
    {"/v1/photos/{photo_id}/original", "/v1/photos/{photo_id}/derivatives/{name}"}
)


def _is_public(request: web.Request) -> bool:
    # tus discovery (OPTIONS /v1/uploads) is public by the protocol; it reveals nothing.
    if request.method == "OPTIONS" and request.raw_path.startswith("/v1/uploads"):
        return True
    route = route_template(request)
    if route is None:
        # Nothing matched (404/405): under /v1 a caller without a token learns nothing.
        return not request.raw_path.startswith("/v1/")
    return not route.startswith("/v1/") or route in _PUBLIC_ROUTES


def _is_signed_blob_request(request: web.Request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and "sig" in request.query
        and route_template(request) in _SIGNED_BLOB_ROUTES
    )


def client_of(request: web.Request) -> ClientRecord:
    """The authenticated client (the auth middleware guarantees one on /v1 routes)."""
    if CLIENT not in request:
        # Only reachable if a route is wrongly treated as public: refuse, don't crash.
        raise ApiError(401, "unauthorized", "send an API token as 'Authorization: Bearer <token>'")
    return request[CLIENT]
