"""The api over HTTP: one aiohttp session with the token, JSON bodies decoded into the
Structs of ``filmstrip.protocols.http``, busy answers (429, 503 with ``Retry-After``) and lost
connections tried again a few times."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec

from filmstrip.client.errors import ApiFailure
from filmstrip.protocols.http import (
    PAGE_SIZE_MAX,
    ErrorBody,
    HashCheckResult,
    Photo,
    PhotoPage,
    SessionCreated,
    UploadAccepted,
)
from filmstrip.protocols.web import ClientConfig

T = TypeVar("T")

#: Digests per ``POST /v1/photos/check`` (the api's limit).
CHECK_BATCH = 1000
_RETRY_STATUSES = frozenset({429, 503})
_MAX_RETRY_AFTER_S = 30.0


@dataclass(frozen=True)
class Answer:
    """An answer read whole (headers case-insensitive)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class ApiClient:
    """A client of one api (``url``, e.g. ``http://127.0.0.1:8080``) with one token."""

    def __init__(self, url: str, token: str, *, attempts: int = 5) -> None:
        self.url = url.rstrip("/")
        self.attempts = attempts
        self._token = token
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120),
            )
        return self._http

    @property
    def token(self) -> str:
        return self._token

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Answer:
        """One request (``body()`` makes a fresh body for each attempt); with ``retry``,
        busy answers and lost connections are tried again, up to ``attempts`` times. Any
        other answer is returned as it is, errors included."""
        url = path if path.startswith("http") else self.url + path
        delay = 0.5
        for attempt in range(1, (self.attempts if retry else 1) + 1):
            last = attempt == (self.attempts if retry else 1)
            try:
                async with self.http.request(
                    method, url, data=body() if body else None, headers=headers
                ) as resp:
                    raw = await resp.read()
                    answer = Answer(resp.status, resp.headers.copy(), raw)
            except (aiohttp.ClientError, TimeoutError) as exc:
                if last:
                    why, request = unreachable(exc), f"{method} {url}"
                    raise ApiFailure(0, "unreachable", why, request=request) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if answer.status in _RETRY_STATUSES and not last:
                await asyncio.sleep(_retry_after(answer.headers, delay))
                delay = min(delay * 2, 10.0)
                continue
            return answer
        raise AssertionError("unreachable")  # the loop returns or raises on its last turn

    async def call(
        self,
        method: str,
        path: str,
        type: type[T],
        *,
        json: Any = None,
        ok: Iterable[int] = (200, 201),
    ) -> T:
        """A JSON call: the answer decoded as ``type``, or :class:`ApiFailure`."""
        payload = msgspec.json.encode(json) if json is not None else None
        answer = await self.send(
            method,
            path,
            body=(lambda: payload) if payload is not None else None,
            headers={"Content-Type": "application/json"} if payload is not None else None,
        )
        if answer.status not in set(ok):
            raise failure(answer)
        return msgspec.json.decode(answer.body, type=type)

    async def config(self) -> ClientConfig:
        """Where the bus listens (public)."""
        return await self.call("GET", "/v1/config", ClientConfig)

    async def existing(self, digests: Iterable[str]) -> dict[str, str]:
        """Which of these SHA-256 digests the client already has: digest → photo id."""
        wanted = sorted({d.lower() for d in digests})
        found: dict[str, str] = {}
        for start in range(0, len(wanted), CHECK_BATCH):
            batch = wanted[start : start + CHECK_BATCH]
            result = await self.call(
                "POST", "/v1/photos/check", HashCheckResult, json={"sha256": batch}
            )
            found.update(result.existing)
        return found

    async def photos_in(self, status: str) -> AsyncIterator[Photo]:
        """Every one of the caller's photos in ``status``, a page at a time."""
        query = f"/v1/photos?status={status}&limit={PAGE_SIZE_MAX}"
        cursor: str | None = ""
        while cursor is not None:
            path = query + (f"&cursor={quote(cursor, safe='')}" if cursor else "")
            page = await self.call("GET", path, PhotoPage)
            for photo in page.items:
                yield photo
            cursor = page.next_cursor

    async def create_session(self) -> SessionCreated:
        return await self.call("POST", "/v1/sessions", SessionCreated)

    async def photo(self, photo_id: str) -> Photo:
        return await self.call("GET", f"/v1/photos/{photo_id}", Photo)

    async def upload_bytes(
        self,
        data: bytes,
        *,
        filename: str,
        sha256: str | None = None,
        session_id: str | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> UploadAccepted:
        """``POST /v1/photos`` (multipart, in one request): for small files. With
        ``sha256`` a photo the client already has is answered before the body is read;
        ``fields`` are more form fields (``pipeline``, ``priority``)."""

        def form() -> aiohttp.FormData:
            made = aiohttp.FormData()
            if session_id:
                made.add_field("session_id", session_id)
            # Before the file: the server refuses a bad one before storing any of it.
            for name, value in (fields or {}).items():
                made.add_field(name, value)
            made.add_field("file", data, filename=filename)
            return made

        headers = {"X-Content-SHA256": sha256} if sha256 else None
        answer = await self.send("POST", "/v1/photos", body=form, headers=headers)
        if answer.status not in (200, 201):
            raise failure(answer)
        return msgspec.json.decode(answer.body, type=UploadAccepted)


def failure(answer: Answer) -> ApiFailure:
    """The api's error answer as an :class:`ApiFailure`."""
    try:
        detail = msgspec.json.decode(answer.body, type=ErrorBody).error
        return ApiFailure(answer.status, detail.code, detail.message)
    except msgspec.DecodeError:
        text = answer.body[:200].decode(errors="replace").strip()
        return ApiFailure(answer.status, "http_error", text or f"HTTP {answer.status}")


def unreachable(exc: aiohttp.ClientError | TimeoutError) -> str:
    """Why a request got no answer, for people: ``cannot connect: Connection refused``."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, socket.gaierror):  # the name
            reason = f"{exc.host}: {cause.strerror or cause}"
        elif isinstance(cause, ssl.SSLError) or not cause.errno:
            reason = str(cause) or type(cause).__name__
        else:  # "Connect call failed (…)": the errno says it better
            reason = os.strerror(cause.errno)
        return f"cannot connect: {reason}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "cannot connect: timed out"
    if isinstance(exc, TimeoutError):
        return "no answer: timed out"
    return f"connection lost: {exc or type(exc).__name__}"


def _retry_after(headers: Mapping[str, str], fallback: float) -> float:
    try:
        return min(max(float(headers.get("Retry-After", "")), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return fallback
