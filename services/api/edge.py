"""A request's head, decoded and checked once, before any other middleware or handler.

aiohttp hands over header values as text decoded with ``surrogateescape``: bytes that are
not UTF-8 arrive as lone surrogates, which break whatever later encodes them (hashing a
token, IDNA-encoding a host, writing JSON). In the URL, ``%00`` and other escaped controls
arrive decoded, and a NUL breaks any file path it reaches. The edge middleware refuses a
URL holding controls (or surrogates) with ``400 bad_request``, refuses a ``Host`` that is
not a host name, and parses ``Authorization`` into :class:`Credentials` that the rate
limiter and the auth middleware both read, so no later code meets these bytes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from filmstrip.services.api.errors import ApiError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# C0 controls (NUL included), DEL, and the lone surrogates of bytes that were not UTF-8.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
# RFC 3986's host (a name, IPv4 or a bracketed IPv6 literal) with an optional port.
_HOST = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]{2,45})\]|(?P<name>[A-Za-z0-9._~-]{1,253}))(?::[0-9]{0,5})?"
)
# RFC 6750's b64token: what a bearer token may be made of.
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]{1,512}=*")


@dataclass(frozen=True, slots=True)
class Credentials:
    """``Authorization: Bearer …`` as sent: ``token`` is None when it is not a well-formed
    bearer token (a guess the rate limiter charges like any refused token)."""

    token: str | None


CREDENTIALS: web.RequestKey[Credentials | None] = web.RequestKey("credentials")
HOST: web.RequestKey[str | None] = web.RequestKey("host")


def credentials_of(request: web.Request) -> Credentials | None:
    """The bearer credentials the request offered, or None if it offered none."""
    return request[CREDENTIALS]


def host_of(request: web.Request) -> str | None:
    """The host name from the ``Host`` header (no port, IPv6 without brackets), if sent."""
    return request[HOST]


def route_template(request: web.Request) -> str | None:
    """The template of the route the router matched (``/v1/photos/{photo_id}``), if any: by
    the raw path, so ``/v1/photos/x%2Foriginal`` is the photo route, not the original's."""
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse URLs and ``Host`` headers that are not text; parse ``Authorization`` once."""
    check_url(request.path, request.query)
    request[HOST] = parse_host(request.headers.get("Host"))
    request[CREDENTIALS] = parse_credentials(request.headers.get("Authorization", ""))
    return await handler(request)


def is_text(value: str) -> bool:
    """Whether ``value`` holds no control character (NUL included) and no lone surrogate:
    text a client may hand the api (PostgreSQL cannot even compare a NUL)."""
    return _NOT_TEXT.search(value) is None


def check_url(path: str, query: Mapping[str, str]) -> None:
    """Raise a 400 ``ApiError`` if the decoded path or query holds controls or surrogates."""
    if not is_text(path) or not all(
        is_text(key) and is_text(value) for key, value in query.items()
    ):
        raise ApiError(
            400, "bad_request", "the URL holds control characters or bytes that are not UTF-8"
        )


def parse_host(header: str | None) -> str | None:
    """The host name of a ``Host`` header value; raises a 400 ``ApiError`` if it is none."""
    if header is None or not header.strip():
        return None
    match = _HOST.fullmatch(header.strip())
    if match is None:
        raise ApiError(400, "bad_request", "the Host header is not a host name")
    return match.group("v6") or match.group("name")


def parse_credentials(header: str) -> Credentials | None:
    """Bearer credentials from an ``Authorization`` value; None for none or another scheme."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return Credentials(token if _TOKEN68.fullmatch(token) else None)
