"""Malformed request bodies are the client's fault: 400, never 500 (found by schemathesis)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import Api
from tests.api.factories import fake_jpeg


async def test_a_body_that_claims_gzip_but_is_not_gets_the_json_error_shape(api: Api) -> None:
    """Bodies are read as sent, never inflated: a broken gzip stream is a JSON route's
    own 400, with a code, not a plain-text refusal from under the handler."""
    resp = await api.http.post(
        f"{api.url}/v1/photos/check",
        data=b"\x1f\x8b\x08\x00 this is no deflate stream",
        headers={**api.auth, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "bad_json"


@pytest.mark.parametrize(
    "part",
    [
        # Control characters in a part's header (found by schemathesis).
        'Content-Disposition: form-data; name=" \x16\x11K"\r\n\r\nx',
        # A _charset_ field longer than any charset's name (found by the fuzzer).
        'Content-Disposition: form-data; name="_charset_"\r\n\r\n' + "x" * 40,
        # One naming no charset, then a field it would decode.
        'Content-Disposition: form-data; name="_charset_"\r\n\r\nnope\r\n--b0undary\r\n'
        'Content-Disposition: form-data; name="session_id"\r\n\r\nabc',
    ],
    ids=["control-characters", "long-charset", "unknown-charset"],
)
async def test_a_malformed_part_before_the_file_is_400(api: Api, part: str) -> None:
    boundary = "b0undary"
    body = (
        (
            f"--{boundary}\r\n{part}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        ).encode()
        + fake_jpeg()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    resp = await api.http.post(
        f"{api.url}/v1/photos",
        data=body,
        headers={**api.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error"]["code"] == "bad_multipart"
    # A sentence for a person: not aiohttp's "400, message:\n Invalid HTTP header: b'…'".
    message = answer["error"]["message"]
    assert message.startswith("the multipart body is malformed: "), message
    assert "\n" not in message and "message:" not in message and "b'" not in message, message
    assert await api.photo_count() == 0
    assert api.blob_files() == []


def _file_part(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + fake_jpeg()


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        # multipart/form-data without a boundary: aiohttp cannot split it at all.
        ("multipart/form-data", _file_part("b0undary") + b"\r\n--b0undary--\r\n", "bad_multipart"),
        # A part that is itself a multipart body (the old multipart/mixed file list).
        (
            "multipart/form-data; boundary=outer",
            b"--outer\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n"
            + _file_part("inner")
            + b"\r\n--inner--\r\n\r\n--outer--\r\n",
            "bad_multipart",
        ),
        # A form field that is not UTF-8 (Latin-1 from an old form).
        (
            "multipart/form-data; boundary=b0undary",
            b'--b0undary\r\nContent-Disposition: form-data; name="session_id"\r\n\r\ncaf\xe9\r\n'
            + _file_part("b0undary")
            + b"\r\n--b0undary--\r\n",
            "bad_field",
        ),
    ],
    ids=["no-boundary", "nested-multipart", "field-not-utf8"],
)
async def test_a_body_that_cannot_be_read_as_a_form_is_400_with_its_code(
    api: Api, content_type: str, body: bytes, code: str
) -> None:
    """Each is the client's error, answered as JSON with a code, with nothing stored; left
    to aiohttp or the decoder they were 500s."""
    resp = await api.http.post(
        f"{api.url}/v1/photos", data=body, headers={**api.auth, "Content-Type": content_type}
    )
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error"]["code"] == code, answer
    assert await api.photo_count() == 0
    assert api.blob_files() == []


@pytest.mark.parametrize(
    ("length", "first"),
    [(5_000_000_000, b"HTTP/1.1 413 "), (1000, b"HTTP/1.1 100 Continue")],
    ids=["oversized", "fits"],
)
async def test_expect_100_continue_is_not_promised_to_a_body_refused_by_its_length(
    api: Api, length: int, first: bytes
) -> None:
    """An oversized ``Content-Length`` is answered 413 at once, without the ``100 Continue``
    that would tell the client to send the body anyway; a body that fits is asked for."""
    parts = urlsplit(api.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            f"POST /v1/photos HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {api.token}\r\n"
            "Content-Type: multipart/form-data; boundary=b0undary\r\n"
            f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert head.startswith(first), head
    if length > api.settings.api.max_upload_bytes:
        assert b"application/json" in head
