"""Signed URLs: valid until they expire, invalid when any part changes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from filmstrip.auth.signing import load_signing_secret, signed_query, verify
from filmstrip.catalog import Catalog
from tests.catalog.conftest import Backend

SECRET = b"k" * 32


def _parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    q = parse_qs(split.query)
    return split.path, q["exp"][0], q["sig"][0]


def test_round_trip_and_expiry() -> None:
    path, exp, sig = _parts(signed_query(SECRET, "/v1/photos/p/original", 60, now=1000))
    assert verify(SECRET, path, exp, sig, now=1000)
    assert not verify(SECRET, path, exp, sig, now=int(exp) + 1)


def test_a_url_lives_at_least_its_ttl() -> None:
    """The expiry is rounded up to the minute, never down: a URL for 60 s still opens 60 s
    later, however late in its minute it was made."""
    for now in (1000, 1019, 1020, 1079):
        path, exp, sig = _parts(signed_query(SECRET, "/v1/photos/p/original", 60, now=now))
        assert verify(SECRET, path, exp, sig, now=now + 60), now
        assert int(exp) < now + 120 and int(exp) % 60 == 0


def test_tampering_is_detected() -> None:
    path, exp, sig = _parts(signed_query(SECRET, "/v1/photos/p/original", 60, now=1000))
    assert not verify(SECRET, "/v1/photos/q/original", exp, sig, now=1000)
    assert not verify(SECRET, path, str(int(exp) + 60), sig, now=1000)
    assert not verify(b"other" * 8, path, exp, sig, now=1000)
    assert not verify(SECRET, path, "soon", sig, now=1000)


async def test_the_secret_is_made_once_and_kept_in_the_catalog(
    catalog: Catalog, tmp_path: Path
) -> None:
    first = await load_signing_secret("", catalog, str(tmp_path / "one"))
    assert len(first) == 64
    # Another process, with a data dir of its own, gets the same key.
    assert await load_signing_secret("", catalog, str(tmp_path / "two")) == first
    assert await load_signing_secret("explicit", catalog, str(tmp_path)) == b"explicit"
    assert not (tmp_path / "one").exists()  # nothing of it on any host's disk


async def test_processes_starting_at_once_agree_on_one_secret(
    backend: Backend, tmp_path: Path
) -> None:
    catalogs = [backend.catalog() for _ in range(4)]
    for each in catalogs:
        await each.connect()
    try:
        keys = await asyncio.gather(
            *(load_signing_secret("", c, str(tmp_path / str(i))) for i, c in enumerate(catalogs))
        )
    finally:
        for each in catalogs:
            await each.close()
    assert len(set(keys)) == 1


async def test_an_embedded_installs_key_file_is_adopted(catalog: Catalog, tmp_path: Path) -> None:
    """Releases before kept the key in ``<data dir>/signing.key``: the URLs they handed out
    stay valid once the key moves into the catalog."""
    (tmp_path / "signing.key").write_text("ab" * 32 + "\n")
    old_url = signed_query(("ab" * 32).encode(), "/v1/photos/p/original", 3600)
    secret = await load_signing_secret("", catalog, str(tmp_path))
    assert secret == ("ab" * 32).encode()
    assert verify(secret, *_parts(old_url))
    # Once adopted, the catalog's key holds whatever any data dir holds.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "signing.key").write_text("cd" * 32)
    assert await load_signing_secret("", catalog, str(tmp_path / "other")) == secret


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
