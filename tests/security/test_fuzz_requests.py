"""Generated request heads, as raw bytes, on every kind of route: the headers and query the
api parses (credentials, host, signed-URL query, trace ids, tus and upload headers, listing
parameters) hold any bytes a socket can carry. Never a 5xx, always the JSON error shape,
never an ERROR in the log, nothing written."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from filmstrip.auth.signing import signed_query
from tests.api.conftest import Api
from tests.security.conftest import MakeApi
from tests.security.hypothesis_async import FUZZ, run_property
from tests.security.raw_http import exchange

OnLoop = Callable[[Coroutine[Any, Any, None]], None]

PHOTO = "0a1b2c3d-0000-4000-8000-000000000000"
ROUTES = [
    ("GET", "/v1/photos"),
    ("POST", "/v1/photos"),
    ("GET", f"/v1/photos/{PHOTO}"),
    ("HEAD", f"/v1/photos/{PHOTO}/derivatives/thumbnail"),
    ("DELETE", f"/v1/photos/{PHOTO}"),
    ("POST", "/v1/photos/check"),
    ("GET", "/v1/sessions/s_1"),
    ("GET", "/v1/queues/photo-processing/jobs"),
    ("POST", "/v1/uploads"),
    ("PATCH", "/v1/uploads/u1"),
    ("HEAD", "/v1/uploads/u1"),
    ("OPTIONS", "/v1/uploads"),
    ("GET", "/v1/config"),
    ("GET", "/static/js/app.js"),
    ("GET", "/readyz"),
]
# Half the requests: the route a signed URL opens without a token.
ORIGINAL = ("GET", f"/v1/photos/{PHOTO}/original")
# Bytes a header value can carry past aiohttp's parser: visible ASCII and any byte from
# 0x80 (so mostly not UTF-8); and, less often, any bytes but CR and LF, which the parser
# refuses or which end the value.
header_bytes = st.one_of(
    st.lists(st.integers(0x20, 0xFF), max_size=60).map(bytes),
    st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
text_or_bytes = st.one_of(header_bytes, st.text(max_size=40).map(str.encode))
HEADERS = ["Authorization", "Host", "traceparent", "X-Trace-Id", "X-Content-SHA256",
           "If-None-Match", "Content-Type", "Content-Encoding", "Tus-Resumable",
           "Upload-Length", "Upload-Offset", "Upload-Metadata", "Upload-Checksum",
           "X-Forwarded-Proto"]  # fmt: skip
QUERY_KEYS = ["exp", "sig", "session_id", "cursor", "limit", "status", "state", "offset", "x"]


@st.composite
def heads(draw: st.DrawFn, token: str, signed: str) -> bytes:
    method, path = draw(st.one_of(st.sampled_from(ROUTES), st.just(ORIGINAL)))
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), text_or_bytes), max_size=4))
    query = "&".join(f"{k}={quote_from_bytes(v)}" for k, v in pairs)
    if path.endswith("/original"):
        # A valid signed URL, or its valid expiry with any bytes as the signature.
        exp, sig = signed.split("&")
        sig = draw(
            st.one_of(text_or_bytes.map(lambda v: "sig=" + quote_from_bytes(v)), st.just(sig))
        )
        query = "&".join(part for part in (exp, sig, query) if part)
    target = path + ("?" + query if query else "")
    lines = [f"{method} {target} HTTP/1.1".encode()]
    headers = draw(st.dictionaries(st.sampled_from(HEADERS), text_or_bytes, max_size=5))
    if "Host" not in headers:
        headers["Host"] = b"api"
    headers["Authorization"] = draw(
        st.one_of(
            st.just(headers.get("Authorization", b"")),
            text_or_bytes.map(lambda value: b"Bearer " + value),
            st.just(f"Bearer {token}".encode()),
        )
    )
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_generated_request_heads_never_5xx(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api: Api = await make_api(api_rate_burst="100000")
    signed = signed_query(api.state.signing_secret, f"/v1/photos/{PHOTO}/original", 3600)

    async def one(head: bytes) -> None:
        reply = await exchange(api.url, head)
        assert reply.status < 500, (head, reply)
        if reply.status >= 400 and not head.startswith(b"HEAD "):
            reply.error()

    @FUZZ
    @given(heads(api.token, signed.split("?", 1)[1]))
    def prop(on_loop: OnLoop, head: bytes) -> None:
        on_loop(one(head))

    await run_property(prop)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [(r.name, r.getMessage()) for r in errors]
    assert api.blob_files() == []
    assert await api.photo_count() == 0
