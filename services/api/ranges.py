"""Byte ranges of a download (RFC 9110 §14): one range is served, so a download cut off
half-way goes on from where it stopped; several at once, or a header we cannot read, get
the whole file, as the RFC lets a server do."""

from __future__ import annotations

import re
from typing import NamedTuple

_ONE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class ByteRange(NamedTuple):
    """``first``-``last`` (``last`` None: to the end); ``first`` None: the last ``last``
    bytes."""

    first: int | None
    last: int | None


def requested_range(header: str | None) -> ByteRange | None:
    """The one range a ``Range`` header asks for; None to send the whole file."""
    if not header:
        return None
    match = _ONE_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = (int(v) if v else None for v in match.groups())
    if first is None and not last:  # "bytes=-" or "bytes=-0": no bytes asked, not a range
        return None
    if first is not None and last is not None and last < first:
        return None
    return ByteRange(first, last)


def bounds(wanted: ByteRange, size: int) -> tuple[int, int] | None:
    """The first and last byte of ``wanted`` in a file of ``size`` bytes; None when it
    starts past the end (416)."""
    if wanted.first is None:
        suffix = wanted.last or 0
        return (max(0, size - suffix), size - 1) if size else None
    if wanted.first >= size:
        return None
    last = size - 1 if wanted.last is None else min(wanted.last, size - 1)
    return wanted.first, last
