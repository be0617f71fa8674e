"""Redis stream ids (``<ms>-<seq>``) as comparable tuples."""

from __future__ import annotations

StreamId = tuple[int, int]

ZERO: StreamId = (0, 0)


def parse(text: str | bytes) -> StreamId:
    """``"1700000000000-3"`` → ``(1700000000000, 3)``; a bare ``"<ms>"`` means seq 0."""
    if isinstance(text, bytes):
        text = text.decode()
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq or 0))


def format_id(sid: StreamId) -> str:
    """The Redis text form of ``sid``."""
    return f"{sid[0]}-{sid[1]}"
