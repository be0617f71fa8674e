"""tus 1.0 headers: what we announce, and parsing/validating what clients send.

Pure functions over header values; the routes decide what to do with the results.
See https://tus.io/protocols/resumable-upload (core, creation, creation-with-upload,
termination, checksum and expiration extensions).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from email.utils import formatdate

from filmstrip.services.api.errors import ApiError

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
#: The only body type a PATCH (or a creation-with-upload POST) may carry.
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
#: tus's status for a chunk whose ``Upload-Checksum`` does not match its bytes.
CHECKSUM_MISMATCH = 460

Hasher = Callable[[], "hashlib._Hash"]
CHECKSUM_ALGORITHMS: dict[str, Hasher] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
}

_MAX_METADATA_BYTES = 4096
_KEY = re.compile(r"^[!-+\--~]+$")  # printable ASCII without space and comma
_DECIMAL = re.compile(r"^[0-9]{1,19}$")


def check_resumable(headers: Mapping[str, str]) -> None:
    """412 unless the request speaks our tus version."""
    if headers.get("Tus-Resumable") != TUS_VERSION:
        raise ApiError(
            412,
            "tus_version",
            f"send 'Tus-Resumable: {TUS_VERSION}' (the only tus version served here)",
            headers={"Tus-Version": TUS_VERSION},
        )


def parse_length(value: str | None, header: str) -> int:
    """A non-negative decimal header value; 400 if absent or malformed."""
    if value is None or not _DECIMAL.match(value.strip()):
        raise ApiError(400, "bad_header", f"{header} must be a non-negative integer")
    return int(value.strip())


def parse_metadata(value: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (value optional)."""
    if not value or not value.strip():
        return {}
    if len(value) > _MAX_METADATA_BYTES:
        raise ApiError(400, "bad_metadata", "Upload-Metadata is too large")
    pairs: dict[str, str] = {}
    for item in value.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not _KEY.match(key) or key in pairs:
            raise ApiError(
                400, "bad_metadata", f"Upload-Metadata has a bad or repeated key {key!r}"
            )
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        # ValueError, not only binascii.Error: a non-ASCII value fails before decoding
        # (found by the atheris fuzzer, tests/security/test_atheris.py).
        except (ValueError, UnicodeDecodeError):
            raise ApiError(
                400, "bad_metadata", f"Upload-Metadata value of {key!r} is not base64 UTF-8"
            ) from None
    return pairs


def encode_metadata(pairs: Mapping[str, str]) -> str:
    """The ``Upload-Metadata`` header value for ``pairs`` (echoed on HEAD)."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in pairs.items()
    )


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` → (algorithm, digest), or None."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ApiError(
            400,
            "bad_checksum_algorithm",
            f"Upload-Checksum algorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}",
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII digest
        raise ApiError(400, "bad_checksum", "Upload-Checksum digest is not base64") from None
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise ApiError(400, "bad_checksum", f"Upload-Checksum is not a {algorithm} digest")
    return algorithm, digest


def http_date(epoch_s: float) -> str:
    """An RFC 9110 date, the format of ``Upload-Expires``."""
    return formatdate(epoch_s, usegmt=True)


def discovery_headers(max_size: int) -> dict[str, str]:
    """What ``OPTIONS`` announces."""
    return {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
