"""The two requests of every photo, a GET and a PUT of one object, sent with aiohttp and
signed by ``filmstrip.blobs.s3_sigv4``, without botocore.

botocore spends ~1.3 ms of CPU on each request beyond what aiohttp's own GET or PUT costs
(its events, request and response objects, endpoint rules, parsing; bench/s3_requests.py),
which is most of the worker's event loop per photo. Only the answer that matters goes
this way: a 2xx. Anything else (an error status, a connection or timeout failure) yields
None and the caller sends the request again through the aioboto3 client, so retries and
the meaning of every error stay in one place (``filmstrip.blobs.s3``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import aiohttp
from yarl import URL

from filmstrip.blobs.s3_sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, SigV4Signer

# Keys sent this way need no percent-encoding (the roles' keys: originals/<id>.jpg,
# derivatives/<id>/thumb.webp); any other goes through botocore.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9._/-]+")
_FAILURES = (aiohttp.ClientError, TimeoutError, OSError)
# Answers that say the store will not take a request signed this way (rather than that the
# object is missing or the store is down, which botocore's request then reports).
_REFUSALS = frozenset({400, 403, 405, 501})

log = logging.getLogger("filmstrip.blobs.s3")


class DirectS3:
    """GET and PUT of plain keys in one bucket, path-style, on ``endpoint_url``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        endpoint_url: str,
        bucket: str,
        region: str,
        credentials: Any,
        sign_payload: bool,
        user_agent: str,
    ) -> None:
        self.http = http
        self.base = f"{endpoint_url.rstrip('/')}/{bucket}/"
        endpoint = URL(self.base, encoded=True)
        host = endpoint.raw_host or ""
        host = f"[{host}]" if ":" in host else host
        # As aiohttp would send it (no default port): the header is signed, so it is set.
        self.host = host if endpoint.is_default_port() else f"{host}:{endpoint.port}"
        self.path = endpoint.raw_path
        self.signer = SigV4Signer(region)
        self.credentials = credentials  # botocore's: refreshes temporary ones itself
        self.sign_payload = sign_payload
        self.user_agent = user_agent
        self._warned: set[int] = set()

    def _refused(self, method: str, status: int) -> None:
        """Say once per status that the store refuses direct requests: each then costs two."""
        if status in _REFUSALS and status not in self._warned:
            self._warned.add(status)
            log.warning(
                "the S3 store answered a direct %s with %d; such requests go through botocore",
                method,
                status,
                extra={"code": "s3_direct_refused"},
            )

    def takes(self, key: str) -> bool:
        """Whether ``key`` (with its prefix) can go this way."""
        return _PLAIN_KEY.fullmatch(key) is not None

    async def _signed(
        self, method: str, key: str, payload_sha256: str, extra: dict[str, str]
    ) -> dict[str, str]:
        frozen = await self.credentials.get_frozen_credentials()
        headers = self.signer.headers(
            method,
            self.host,
            self.path + key,
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            token=frozen.token,
            payload_sha256=payload_sha256,
            extra=extra,
        )
        return {**headers, "User-Agent": self.user_agent}

    async def put(
        self, key: str, data: bytes, content_type: str, *, sha256: str | None = None
    ) -> str | None:
        """PutObject (``sha256``: the body's, if known); the ETag, or None if it did not
        succeed."""
        url = self.base + key
        if not self.sign_payload:
            sha256 = UNSIGNED_PAYLOAD
        elif sha256 is None:
            sha256 = hashlib.sha256(data).hexdigest()
        headers = {"Content-Type": content_type, "Content-Length": str(len(data))}
        try:
            signed = await self._signed("PUT", key, sha256, headers)
            async with self.http.put(URL(url, encoded=True), data=data, headers=signed) as resp:
                await resp.read()
                if resp.status != 200:
                    self._refused("PUT", resp.status)
                    return None
                return str(resp.headers.get("ETag", ""))
        except _FAILURES:
            return None

    async def get(self, key: str, *, start: int = 0) -> aiohttp.ClientResponse | None:
        """GetObject's response, its body unread (the caller releases it): from byte
        ``start`` on, a 206, or a 416 when that is past the end; None if it did not
        succeed."""
        url = self.base + key
        try:
            signed = await self._signed(
                "GET", key, EMPTY_SHA256, {"Range": f"bytes={start}-"} if start else {}
            )
            resp = await self.http.get(URL(url, encoded=True), headers=signed)
        except _FAILURES:
            return None
        if start and resp.status == 416:
            return resp
        if resp.status != (206 if start else 200) or "Content-Length" not in resp.headers:
            self._refused("GET", resp.status)
            resp.release()
            return None
        return resp
