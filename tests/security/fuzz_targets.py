"""Targets for the coverage-guided fuzzer (atheris): the tus header parsers, the request
head's parsers (credentials, host, URL, signed-URL query) and the upload handler's
multipart reading. Each takes fuzzer bytes; a 4xx ``ApiError`` is the expected answer to
garbage, anything else escaping is a bug (atheris reports it as a crash)."""

from __future__ import annotations

import asyncio

from aiohttp import MultipartReader
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader

from filmstrip.auth import hash_token
from filmstrip.auth.signing import sign, verify
from filmstrip.services.api import edge, uploads
from filmstrip.services.api.errors import ApiError
from filmstrip.services.api.pacing import BodyPace
from filmstrip.services.api.tus import protocol

BOUNDARY = "fuzzboundary"


def _strings(data: bytes, n: int) -> list[str]:
    """``data`` cut into ``n`` header-like strings, decoded as aiohttp decodes header
    values: UTF-8, with bytes that are not UTF-8 as lone surrogates."""
    parts = data.split(b"\x00", n - 1)
    texts = [part.decode("utf-8", "surrogateescape") for part in parts]
    return texts + [""] * (n - len(texts))


def tus_headers(data: bytes) -> None:
    """Every tus header parser on fuzzed values; results must keep their contracts."""
    length, metadata, checksum, version = _strings(data, 4)
    for call in (
        lambda: protocol.check_resumable({"Tus-Resumable": version}),
        lambda: _check_length(protocol.parse_length(length, "Upload-Length")),
        lambda: _check_metadata(protocol.parse_metadata(metadata)),
        lambda: _check_checksum(protocol.parse_checksum(checksum)),
    ):
        try:
            call()
        except ApiError as exc:
            assert 400 <= exc.status < 500, exc


def _check_length(value: int) -> None:
    assert 0 <= value < 10**19


def _check_metadata(pairs: dict[str, str]) -> None:
    # What we echo back on HEAD must parse to the same pairs.
    assert protocol.parse_metadata(protocol.encode_metadata(pairs)) == pairs


def _check_checksum(parsed: tuple[str, bytes] | None) -> None:
    if parsed is not None:
        algorithm, digest = parsed
        assert len(digest) == protocol.CHECKSUM_ALGORITHMS[algorithm]().digest_size


_SECRET = b"s" * 32


def request_head(data: bytes) -> None:
    """What the edge and the signed-URL check read from a request's head, fuzzed."""
    authorization, host, path, exp, sig, key = _strings(data, 6)
    credentials = edge.parse_credentials(authorization)
    if credentials is not None and credentials.token is not None:
        hash_token(credentials.token)  # a token that passed the parser always hashes
    try:
        name = edge.parse_host(host)
        assert name is None or name.isascii(), name
    except ApiError as exc:
        assert exc.status == 400, exc
    try:
        edge.check_url(path, {key: sig})
    except ApiError as exc:
        assert exc.status == 400, exc
    assert verify(_SECRET, path, exp, sig) in (True, False)


_loop: asyncio.AbstractEventLoop | None = None


def multipart_body(data: bytes) -> None:
    """The upload handler's multipart steps over a fuzzed body, fields through the file."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    _loop.run_until_complete(_read_upload(data))


async def _read_upload(data: bytes) -> None:
    loop = asyncio.get_running_loop()
    stream = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    stream.feed_data(data)
    stream.feed_eof()
    reader = MultipartReader({"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}, stream)
    pace = BodyPace(idle_s=1.0, min_bytes_per_s=0)
    try:
        part, _fields = await uploads._fields_until_file(reader, pace)
        if part is None:
            return
        while await uploads._parse(pace, part.read_chunk(uploads._CHUNK)):
            pass
        await uploads._trailing_fields(reader, pace)
    except ApiError as exc:
        assert 400 <= exc.status < 500, exc


def _seed_body(*parts: tuple[str, bytes]) -> bytes:
    out = b""
    for name, body in parts:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        if name == "file":
            out += b'; filename="a.jpg"\r\nContent-Type: image/jpeg'
        out += b"\r\n\r\n" + body + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


#: Valid inputs the fuzzer starts from, so it mutates structure instead of finding it.
SEEDS: dict[str, list[bytes]] = {
    "tus_headers": [
        b"1024\x00filename YS5qcGc=,filetype aW1hZ2UvanBlZw==,flag\x00"
        b"sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=\x001.0.0",
        b"0\x00\x00md5 1B2M2Y8AsgTpgAmY7PhCfg==\x001.0.0",
    ],
    "request_head": [
        b"Bearer fst_abc-DEF_123\x00api.example.com:8080\x00/v1/photos/p/original\x00"
        + b"4102444800\x00"
        + sign(_SECRET, "/v1/photos/p/original", 4102444800).encode()
        + b"\x00sig",
        b"Basic dXNlcjpwdw==\x00[::1]:80\x00/static/app.css\x001\x00abc\x00q",
    ],
    "multipart_body": [
        _seed_body(("session_id", b"abc"), ("file", b"\xff\xd8\xff\xe0" + b"x" * 64)),
        _seed_body(("file", b"\x89PNG\r\n\x1a\n")),
        _seed_body(("note", b"hello"), ("file", b"GIF89a"), ("other", b"trailing")),
    ],
}

TARGETS = {
    "tus_headers": tus_headers,
    "request_head": request_head,
    "multipart_body": multipart_body,
}
