"""Signed URLs: valid until they expire, invalid when any part changes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from filmstrip.auth.signing import load_or_create_secret, signed_query, verify

SECRET = b"k" * 32


def _parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    q = parse_qs(split.query)
    return split.path, q["exp"][0], q["sig"][0]


def test_round_trip_and_expiry() -> None:
    path, exp, sig = _parts(signed_query(SECRET, "/v1/photos/p/original", 60, now=1000))
    assert verify(SECRET, path, exp, sig, now=1000)
    assert not verify(SECRET, path, exp, sig, now=int(exp) + 1)


def test_tampering_is_detected() -> None:
    path, exp, sig = _parts(signed_query(SECRET, "/v1/photos/p/original", 60, now=1000))
    assert not verify(SECRET, "/v1/photos/q/original", exp, sig, now=1000)
    assert not verify(SECRET, path, str(int(exp) + 60), sig, now=1000)
    assert not verify(b"other" * 8, path, exp, sig, now=1000)
    assert not verify(SECRET, path, "soon", sig, now=1000)


def test_embedded_secret_is_kept(tmp_path: object) -> None:
    first = load_or_create_secret("", str(tmp_path))
    assert first == load_or_create_secret("", str(tmp_path))
    assert load_or_create_secret("explicit", str(tmp_path)) == b"explicit"
