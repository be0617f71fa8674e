"""A PUT's signature covers its body's SHA-256 over plain http, not over https (TLS keeps
the body intact there), unless ``FILMSTRIP_S3_SIGN_PAYLOAD`` says otherwise."""

from __future__ import annotations

import hashlib
import os

import pytest

from filmstrip.blobs.s3 import S3BlobStore, sign_payload
from filmstrip.settings import load_settings
from tests.blobs.test_s3 import s3_env
from tests.support.recording_endpoint import recording_endpoint

UNSIGNED = "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize(
    ("endpoint", "setting", "signed"),
    [
        ("http://10.0.0.5:8333", None, True),
        ("http://10.0.0.5:8333", "auto", True),
        ("HTTP://s3.internal", None, True),
        ("https://s3.example.net", None, False),
        ("https://s3.example.net", "auto", False),
        ("", None, False),  # AWS, over https
        ("http://10.0.0.5:8333", "false", False),
        ("https://s3.example.net", "true", True),
    ],
)
def test_auto_signs_the_payload_over_plain_http_only(
    endpoint: str, setting: str | None, signed: bool
) -> None:
    env = {"FILMSTRIP_S3_ENDPOINT_URL": endpoint}
    if setting is not None:
        env["FILMSTRIP_S3_SIGN_PAYLOAD"] = setting
    assert sign_payload(load_settings(env).blobs) is signed


@pytest.mark.parametrize(("setting", "signed"), [("auto", True), ("false", False)])
async def test_a_put_over_http_carries_its_body_s_hash_unless_told_not_to(
    setting: str, signed: bool
) -> None:
    url = "s3://signing"
    body = os.urandom(100_000)
    async with recording_endpoint() as endpoint:
        env = {**s3_env(endpoint, url), "FILMSTRIP_S3_SIGN_PAYLOAD": setting}
        store = await S3BlobStore.from_settings(url, load_settings(env))
        try:
            await store.put_bytes("originals/a.jpg", body, content_type="image/jpeg")
        finally:
            await store.close()
    (put,) = [r for r in endpoint.requests if r.method == "PUT"]
    assert put.body == body
    expected = hashlib.sha256(body).hexdigest() if signed else UNSIGNED
    assert put.headers["X-Amz-Content-SHA256"] == expected
    # Signed either way: the hash (or the word saying there is none) is among what the
    # signature covers, and so is the length, which alone pins an unsigned body's size.
    signed_headers = put.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert {"content-length", "content-type", "x-amz-content-sha256"} <= set(
        signed_headers.split(";")
    )
