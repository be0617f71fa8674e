"""Signed URLs: valid until they expire, invalid when any part changes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_hostile_query_text_is_refused_never_raised() -> None:
    """``exp`` and ``sig`` come from any URL: non-ASCII (which ``compare_digest`` refuses
    with a TypeError), bytes that were not UTF-8, digits ``int()`` would take."""
    path, exp, sig = _parts(signed_query(SECRET, "/v1/photos/p/original", 60, now=1000))
    for bad_sig in ("é", "\udcff", sig.upper(), sig + "0", sig[:-1] + "é", ""):
        assert not verify(SECRET, path, exp, bad_sig, now=1000), bad_sig
    arabic = exp.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for bad_exp in (arabic, f" {exp}", f"{exp[:2]}_{exp[2:]}", f"+{exp}", "9" * 40):
        assert not verify(SECRET, path, bad_exp, sig, now=1000), bad_exp


# Lone surrogates included: aiohttp turns bytes that are not UTF-8 into them.
_ANY_TEXT = st.text(st.characters(exclude_categories=()))


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(
    st.one_of(_ANY_TEXT, st.text(st.characters(categories=["Cs"]), min_size=1)),
    st.one_of(_ANY_TEXT, st.integers(1000, 10**12).map(str)),
    st.one_of(_ANY_TEXT, st.text("0123456789abcdef", min_size=43, max_size=43)),
)
def test_any_text_verifies_false_without_raising(path: str, exp: str, sig: str) -> None:
    assert verify(SECRET, path, exp, sig, now=1000) is False
