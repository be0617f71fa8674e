"""The upload endpoint under generated multipart bodies: never a 5xx, always a JSON error
with a code, and nothing left behind by a refusal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.api.conftest import Api
from tests.security.conftest import MakeApi
from tests.security.hypothesis_async import FUZZ, run_property

OnLoop = Callable[[Coroutine[Any, Any, None]], None]

_BCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?"
_HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """Four times in five the well-formed value, else the odd one: most bodies get deep
    enough into the parser to meet the damage."""
    return draw(usual) if draw(st.sampled_from([True, True, True, True, False])) else draw(odd)


# What the sniffer decides on, with junk after: the magic alone must not be enough to crash.
magics = st.sampled_from(
    [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
     b"II*\x00", b"\x00\x00\x00\x18ftypheic", b"", b"<svg", b"PK\x03\x04", b"%PDF"]
)  # fmt: skip


@st.composite
def parts(draw: st.DrawFn, boundary: str) -> bytes:
    name = mostly(
        draw, st.sampled_from(["file", "file", "session_id", "other"]), st.text(max_size=20)
    )
    disposition = f'form-data; name="{name}"'
    if draw(st.booleans()):
        disposition += f'; filename="{draw(st.text(max_size=30))}"'
    disposition = mostly(draw, st.just(disposition), _HEADER_TEXT)
    headers = f"Content-Disposition: {disposition}\r\n"
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(["Content-Type", "Content-Transfer-Encoding",
                                    "Content-Length", "X-Junk"]))  # fmt: skip
        headers += f"{key}: {draw(_HEADER_TEXT)}\r\n"
    delimiter = mostly(
        draw,
        st.just(f"--{boundary}\r\n"),
        st.sampled_from([f"--{boundary}\n", f"{boundary}\r\n", f"--{boundary}--\r\n"]),
    )
    if name == "file":
        body = draw(magics) + draw(st.binary(max_size=3000))
    else:
        body = draw(st.binary(max_size=100))
    return (delimiter + headers + "\r\n").encode("utf-8", "surrogatepass") + body + b"\r\n"


@st.composite
def uploads(draw: st.DrawFn) -> tuple[str, bytes]:
    """A Content-Type header and a body: mostly multipart-shaped, then damaged."""
    boundary = mostly(
        draw,
        st.text(st.sampled_from(_BCHARS), min_size=1, max_size=70),
        _HEADER_TEXT.filter(lambda s: ";" not in s),
    )
    # Quoted unless it is a plain token: tspecials unquoted are a malformed header.
    quoted = boundary if boundary.replace("-", "").replace("_", "").isalnum() else f'"{boundary}"'
    content_type = mostly(
        draw,
        st.just(f"multipart/form-data; boundary={quoted}"),
        st.sampled_from(
            ["multipart/form-data", f"multipart/mixed; boundary={quoted}",
             f"multipart/form-data; boundary={boundary}", "application/octet-stream"]
        ),
    )  # fmt: skip
    body = b"".join(draw(st.lists(parts(boundary), min_size=1, max_size=4)))
    if draw(st.integers(0, 4)):
        body += f"--{boundary}--\r\n".encode()
    damage = draw(st.integers(0, 9))
    if body and damage in (0, 1):
        body = body[: draw(st.integers(0, len(body)))]
    elif body and damage in (2, 3):
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + draw(st.binary(min_size=1, max_size=16)) + body[at + 1 :]
    elif damage == 4:
        body = draw(st.binary(max_size=4000))
    return content_type, body


# The other inputs the endpoint reads: the checksum header and the session in the query.
extras = st.fixed_dictionaries(
    {},
    optional={
        "X-Content-SHA256": st.one_of(
            st.text("0123456789abcdef", min_size=64, max_size=64), _HEADER_TEXT
        ),
        "session_id": st.one_of(st.text(max_size=80), st.just("s_unknown")),
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "x-junk"]),
    },
)


async def _check_invariants(api: Api) -> None:
    files = api.blob_files()
    assert not [f for f in files if f.startswith(".tmp/")], files
    originals = [f for f in files if f.startswith("originals/")]
    assert len(originals) == await api.photo_count()


async def test_generated_multipart_bodies_never_5xx_nor_leak(make_api: MakeApi) -> None:
    api = await make_api(api_rate_burst="100000")

    async def one(content_type: str, body: bytes, extra: dict[str, str]) -> None:
        query = {"session_id": extra.pop("session_id")} if "session_id" in extra else {}
        resp = await api.http.post(
            f"{api.url}/v1/photos",
            data=body,
            params=query,
            headers={**api.auth, "Content-Type": content_type, **extra},
        )
        raw = await resp.read()
        assert resp.status < 500, (resp.status, raw)
        if resp.status >= 400:
            error = orjson.loads(raw)["error"]
            assert isinstance(error["code"], str) and error["code"] and error["message"]
        else:
            assert resp.status in (200, 201), (resp.status, raw)
        await _check_invariants(api)

    @FUZZ
    @given(uploads(), extras)
    def prop(on_loop: OnLoop, upload: tuple[str, bytes], extra: dict[str, str]) -> None:
        on_loop(one(*upload, extra))

    await run_property(prop)


async def test_connections_cut_mid_body_leave_nothing(make_api: MakeApi) -> None:
    api = await make_api()
    url = urlsplit(api.url)
    assert url.hostname is not None and url.port is not None
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        + b"\xff\xd8\xff\xe0"
        + bytes(range(256)) * 100
    )
    head = (
        f"POST /v1/photos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body) + 50}\r\n"
        "\r\n"
    ).encode()
    for cut in (0, 10, 80, 90, 200, 5000, len(body)):
        _reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(head + body[:cut])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    # The server notices each cut on its own schedule; wait (bounded) until it has.
    async with asyncio.timeout(10):
        while True:
            if not api.blob_files():
                break
            await asyncio.sleep(0.05)
    assert await api.photo_count() == 0
    assert await api.waiting_jobs() == 0


async def _chunked(parts: list[tuple[str, bytes]]) -> AsyncIterator[bytes]:
    for name, data in parts:
        yield f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        for at in range(0, len(data), 65536):
            yield data[at : at + 65536]
        yield b"\r\n"
    yield b"--b--\r\n"


async def test_chunked_bodies_cannot_grow_fields_without_bound(make_api: MakeApi) -> None:
    """A chunked body has no Content-Length to check: field count and size are capped."""
    api = await make_api()
    headers = {**api.auth, "Content-Type": "multipart/form-data; boundary=b"}
    url = f"{api.url}/v1/photos"
    cases = {
        "too_many_fields": [(f"f{i}", b"x") for i in range(1000)],
        "field_too_large": [("comment", b"x" * 10_000_000)],
    }
    for code, parts in cases.items():
        resp = await api.http.post(url, data=_chunked(parts), headers=headers)
        body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (400, code), body
    assert api.blob_files() == []
