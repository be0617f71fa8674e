"""The direct path's SigV4 signer: AWS's own worked example, and botocore's signer on the
requests the direct path sends (a server that checks signatures is the SeaweedFS suite)."""

from __future__ import annotations

import calendar
import hashlib
from datetime import UTC, datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from filmstrip.blobs import s3_sigv4
from filmstrip.blobs.s3_sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, SigV4Signer

KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_aws_s_example_get_object() -> None:
    # docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "GET Object".
    headers = SigV4Signer("us-east-1").headers(
        "GET", "examplebucket.s3.amazonaws.com", "/test.txt",
        access_key=KEY, secret_key=SECRET, payload_sha256=EMPTY_SHA256,
        extra={"Range": "bytes=0-9"}, now=calendar.timegm((2013, 5, 24, 0, 0, 0)),
    )  # fmt: skip
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        " SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        " Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z"


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize("payload", ["signed", UNSIGNED_PAYLOAD])
def test_the_same_signature_as_botocore_s_for_a_direct_put(
    monkeypatch: pytest.MonkeyPatch, token: str | None, payload: str
) -> None:
    now = calendar.timegm((2026, 12, 6, 10, 30, 0))
    body = b"jpeg bytes"
    sha = hashlib.sha256(body).hexdigest() if payload == "signed" else payload
    headers = SigV4Signer("eu-west-1").headers(
        "PUT", "10.0.0.2:8333", "/photos/originals/p1.jpg",
        access_key=KEY, secret_key=SECRET, token=token, payload_sha256=sha,
        extra={"Content-Type": "image/jpeg", "Content-Length": str(len(body))}, now=now,
    )  # fmt: skip

    # botocore's signer, at the same instant, on the same request.
    monkeypatch.setattr(
        "botocore.auth.get_current_datetime",
        lambda: datetime.fromtimestamp(now, UTC).replace(tzinfo=None),
    )
    request = AWSRequest(
        method="PUT", url="http://10.0.0.2:8333/photos/originals/p1.jpg", data=body,
        headers={"Content-Type": "image/jpeg", "Content-Length": str(len(body))},
    )  # fmt: skip
    request.context["client_config"] = Config(s3={"payload_signing_enabled": payload == "signed"})
    S3SigV4Auth(Credentials(KEY, SECRET, token), "s3", "eu-west-1").add_auth(request)
    assert headers["Authorization"] == request.headers["Authorization"]
    assert headers["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]


def test_the_signing_key_is_derived_once_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    derived: list[str] = []
    real = s3_sigv4._hmac

    def counting(key: bytes, text: str) -> bytes:
        derived.append(text)
        return real(key, text)

    monkeypatch.setattr(s3_sigv4, "_hmac", counting)
    signer = SigV4Signer("us-east-1")
    day = calendar.timegm((2026, 12, 6, 0, 0, 0))
    for now in (day + 1, day + 3600, day + 86_399):
        signer.headers("GET", "h", "/b/k", access_key=KEY, secret_key=SECRET, now=now)
    assert derived == ["20261206", "us-east-1", "s3", "aws4_request"]
    signer.headers("GET", "h", "/b/k", access_key=KEY, secret_key=SECRET, now=day + 86_400)
    assert derived[4:] == ["20261207", "us-east-1", "s3", "aws4_request"]


def _botocore_authorization(
    monkeypatch: pytest.MonkeyPatch, now: int, secret: str, headers: dict[str, str]
) -> str:
    monkeypatch.setattr(
        "botocore.auth.get_current_datetime",
        lambda: datetime.fromtimestamp(now, UTC).replace(tzinfo=None),
    )
    request = AWSRequest(
        method="PUT", url="http://10.0.0.2:8333/photos/originals/p1.jpg", data=b"",
        headers=headers,
    )  # fmt: skip
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(Credentials(KEY, secret, None), "s3", "eu-west-1").add_auth(request)
    return str(request.headers["Authorization"])


def test_a_header_value_is_signed_trimmed_with_its_spaces_collapsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An uploaded content type is the client's: it may carry runs of spaces, which the
    # server collapses in the canonical request before it checks the signature.
    now = calendar.timegm((2026, 12, 6, 10, 30, 0))
    extra = {"Content-Type": " image/jpeg;  charset=binary ", "Content-Length": "0"}
    ours = SigV4Signer("eu-west-1").headers(
        "PUT", "10.0.0.2:8333", "/photos/originals/p1.jpg",
        access_key=KEY, secret_key=SECRET, extra=extra, now=now,
    )  # fmt: skip
    assert ours["Authorization"] == _botocore_authorization(monkeypatch, now, SECRET, extra)


def test_a_rotated_secret_signs_with_its_own_key_the_same_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Temporary credentials rotate within a day: the cached signing key is the secret's.
    now = calendar.timegm((2026, 12, 6, 10, 30, 0))
    extra = {"Content-Type": "image/jpeg", "Content-Length": "0"}
    signer = SigV4Signer("eu-west-1")
    for secret in (SECRET, "another-secret", SECRET):
        ours = signer.headers(
            "PUT", "10.0.0.2:8333", "/photos/originals/p1.jpg",
            access_key=KEY, secret_key=secret, extra=extra, now=now,
        )  # fmt: skip
        assert ours["Authorization"] == _botocore_authorization(monkeypatch, now, secret, extra)
