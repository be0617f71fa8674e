"""A local file as the uploader sees it: its size, its SHA-256 and what kind of photo its
leading bytes say it is (the api's own table, so what we skip is what it would refuse)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec

from filmstrip.protocols.formats import CONTENT_TYPES, SNIFF_BYTES, sniff_format

_READ = 1024 * 1024


class LocalFile(msgspec.Struct, frozen=True, kw_only=True):
    """``format`` is None for a file that is not a photo we accept (then no ``sha256``);
    ``path`` may be given as a ``str`` or any path-like (kept as a :class:`Path`)."""

    path: Path
    size: int
    format: str | None
    sha256: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):  # a str: the uploads read it as a Path
            msgspec.structs.force_setattr(self, "path", Path(self.path))

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.format or "", "application/octet-stream")


def inspect_file(path: str | os.PathLike[str]) -> LocalFile:
    """Sniff and hash ``path`` (blocking: run it in a thread)."""
    path = Path(path)
    with open(path, "rb") as src:
        head = src.read(SNIFF_BYTES)
        fmt = sniff_format(head)
        if fmt is None:
            return LocalFile(path=path, size=path.stat().st_size, format=None, sha256=None)
        digest = hashlib.sha256(head)
        size = len(head)
        while chunk := src.read(_READ):
            digest.update(chunk)
            size += len(chunk)
    return LocalFile(path=path, size=size, format=fmt, sha256=digest.hexdigest())


def read_range(path: str | os.PathLike[str], offset: int, length: int) -> bytes:
    """``length`` bytes of ``path`` from ``offset`` (blocking: run it in a thread)."""
    with open(path, "rb") as src:
        src.seek(offset)
        return src.read(length)
