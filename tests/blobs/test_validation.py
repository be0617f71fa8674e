"""The key rules shared by every store."""

from __future__ import annotations

import pytest

from filmstrip.blobs.validation import check_key, check_prefix
from filmstrip.errors import LogicError


# S3's limit is 1024 bytes of UTF-8, not characters: "ü" is two.
@pytest.mark.parametrize(
    "key", ["a", "originals/ab/cd/uuid.jpg", "x y/ü.heic", "a.b/c..d", "k" * 1024, "ü" * 512]
)
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "/a", "a/", "a//b", "..", "a/..", "./a", ".hidden", "a/.tmp/b", "a\x00", "a\\b",
            "k" * 1025, "ü" * 513],
)  # fmt: skip
def test_bad_keys(key: str) -> None:
    with pytest.raises(LogicError):
        check_key(key)


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b", "a/b/"])
def test_good_prefixes(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/a", "../", "a/../", ".tmp/"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(LogicError):
        check_prefix(prefix)
