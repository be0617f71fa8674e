"""A photo's file name: what is kept of the name a client sent, and how a download names it.

Kept (:func:`clean_filename`): the last path segment (``/`` and ``\\`` both separate, as
browsers and old Windows clients send them), NFC-normalised, without control characters
(C0, DEL, C1; tabs and line breaks become spaces), bidirectional overrides (which can make
``gpj.exe`` read as ``exe.jpg``) or unpaired surrogates, runs of whitespace as one space,
no leading or trailing space, at most :data:`MAX_BYTES` bytes of UTF-8 (cut on a
character, keeping an extension of up to 16 bytes). A name that is empty, ``.`` or ``..``
after that is no name.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

#: The longest name kept, in UTF-8 bytes: what most filesystems allow for one name.
MAX_BYTES = 255
_MAX_EXTENSION = 16

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_DROPPED = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_BREAKS = re.compile("[\t\n\v\f\r]")  # control characters that separate words
_SPACES = re.compile(r"\s+")
# RFC 8187's attr-char besides letters and digits (quote keeps ``_.-~`` anyway).
_ATTR_CHARS = "!#$&+-.^_`|~"


def clean_filename(raw: str | None) -> str | None:
    """The name kept of ``raw`` by the rules above; None when nothing is left."""
    if raw is None:
        return None
    name = re.split(r"[/\\]", raw)[-1]
    name = unicodedata.normalize("NFC", _DROPPED.sub("", _BREAKS.sub(" ", name)))
    name = _SPACES.sub(" ", name).strip()
    if name in ("", ".", ".."):
        return None
    return _bounded(name)


def multipart_filename(raw: str | None) -> str | None:
    """The name a multipart part's ``filename`` carries, kept by the rules above. Browsers
    percent-encode ``"``, CR and LF in it (the HTML standard), aiohttp and others every
    byte outside ASCII letters and digits: decoded here, so both arrive as sent (the cost:
    a name that really holds ``%22`` loses it). ``filename*`` arrives decoded already."""
    return clean_filename(None if raw is None else unquote(raw))


def content_disposition(filename: str, *, disposition: str = "attachment") -> str:
    """A ``Content-Disposition`` (RFC 6266) naming ``filename``: a quoted ASCII fallback, and
    ``filename*=UTF-8''…`` (RFC 8187) when the fallback is not the name itself."""
    fallback = _ascii_fallback(filename)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe=_ATTR_CHARS)}"
    return value


def _ascii_fallback(name: str) -> str:
    # Accents dropped (é -> e) before anything else becomes "_"; quotes and backslashes too,
    # which some browsers mishandle even escaped.
    folded = unicodedata.normalize("NFKD", name)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in folded)


def _bounded(name: str) -> str:
    if len(name.encode()) <= MAX_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode()) > _MAX_EXTENSION:
        stem, dot, extension = name, "", ""
    room = MAX_BYTES - len(dot.encode()) - len(extension.encode())
    cut = stem.encode()[:room].decode(errors="ignore").rstrip()
    return cut + dot + extension
