"""Property-based conformance: schemathesis drives every documented operation of a running
api with an admin token; no answer may be a 5xx or stray from the document.

schemathesis calls over blocking HTTP, so the api runs on its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.redis_server import RedisServer
from filmstrip.protocols import openapi
from filmstrip.services.api.state import STATE
from filmstrip.services.cli.tokens import issue_token
from tests.api.conftest import api_settings, start_api
from tests.support import postgres

# Small and fixed for the suite; `FILMSTRIP_FUZZ_EXAMPLES=500` hunts with random seeds.
EXAMPLES_PER_OPERATION = int(os.environ.get("FILMSTRIP_FUZZ_EXAMPLES", "10"))
DERANDOMIZE = "FILMSTRIP_FUZZ_EXAMPLES" not in os.environ

# Uploads are judged by their leading bytes: give schemathesis real photo signatures with
# random tails (distinct bytes, so both new photos and duplicates occur).
_SIGNATURES = {
    "image/jpeg": b"\xff\xd8\xff\xe0",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/gif": b"GIF89a",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "image/tiff": b"II*\x00",
}
for _media_type, _head in _SIGNATURES.items():
    schemathesis.openapi.media_type(
        _media_type, st.binary(max_size=64).map(lambda tail, head=_head: head + tail)
    )
# tus PATCH bodies (and creation-with-upload) are raw bytes: a photo's first bytes.
schemathesis.openapi.media_type(
    "application/offset+octet-stream",
    st.binary(max_size=256).map(lambda tail: _SIGNATURES["image/jpeg"] + tail),
)


class ThreadedApi:
    """An api on a loopback port, served by an event loop in a background thread."""

    def __init__(self, data_dir: Path, redis_url: str) -> None:
        # It serves a whole module: its catalog is not the first test's to drop.
        self._own = postgres.role_catalog_settings(per_test=False)
        self._settings = api_settings(data_dir, redis_url, max_upload_bytes="400000", **self._own)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self.token = ""
        self._thread = threading.Thread(target=self._run, name="schemathesis-api", daemon=True)

    def __enter__(self) -> ThreadedApi:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            raise RuntimeError("the api did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._own:
            postgres.drop_database(self._own["database_url"])

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner, self.url = await start_api(self._settings)
        state = runner.app[STATE]
        try:
            _client, self.token = await issue_token(state.catalog, "fuzzer", admin=True)
            self._ready.set()
            await self._stop.wait()
        finally:
            await state.redis.flushall()
            await runner.cleanup()


@pytest.fixture(scope="module")
def live_api(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedApi]:
    with ThreadedApi(tmp_path_factory.mktemp("schemathesis"), redis_server.url) as api:
        yield api


@pytest.fixture(scope="module")
def api_schema(live_api: ThreadedApi) -> Any:
    return schemathesis.openapi.from_url(f"{live_api.url}/v1/openapi.json")


def _without_server_made_values(case: Any) -> Any:
    # A cursor is opaque: only one the server made is valid, and no schema can say which,
    # so a generated one is rightly 400 (tests/api/test_listing.py covers cursors). Likewise
    # X-Content-SHA256 must be the digest of the body sent with it (tests/api/test_checks.py).
    if case.query:
        case.query.pop("cursor", None)
    if case.headers:
        case.headers.pop("X-Content-SHA256", None)
        # Likewise a tus Upload-Checksum must be the digest of the chunk (test_tus.py).
        case.headers.pop("Upload-Checksum", None)
        # The size limit is a setting the document cannot know (it is announced at run time
        # as Tus-Max-Size); keep declared lengths under this api's.
        if "Upload-Length" in case.headers:
            body = case.body if isinstance(case.body, bytes) else b""
            declared = min(int(case.headers["Upload-Length"]), 400000)
            case.headers["Upload-Length"] = str(max(declared, len(body)))
    return case


# One test per documented operation. (schemathesis' own pytest integration reads
# pytest internals that pytest 9 removed, so operations are driven through Hypothesis.)
OPERATIONS = sorted(
    (method.upper(), path) for path, operations in openapi.paths().items() for method in operations
)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_document(
    api_schema: Any, live_api: ThreadedApi, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {live_api.token}"}

    @given(case=operation.as_strategy().map(_without_server_made_values))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=DERANDOMIZE,
        database=None,
    )
    def conforms(case: Any) -> None:
        case.call_and_validate(base_url=live_api.url, headers=headers)

    conforms()


def test_the_fuzzed_document_is_the_generated_one(live_api: ThreadedApi) -> None:
    import urllib.request

    import orjson

    with urllib.request.urlopen(f"{live_api.url}/v1/openapi.json") as resp:
        assert orjson.loads(resp.read()) == openapi.document()
