"""The soaks' uploads: corpus photos made unique (so each is a new photo, not a duplicate)
and hostile files that must fail as DATA, dealt out to the clients."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"

# (bytes, whether it is a hostile file) per upload, per client.
Plan = list[tuple[bytes, bool]]


def unique_variant(data: bytes, tag: str) -> bytes:
    """The same picture with a marker that makes its bytes (and SHA-256) unique: a JPEG COM
    segment after SOI, or a PNG tEXt chunk after IHDR. Decoders ignore both."""
    marker = tag.encode()
    if data[:2] == b"\xff\xd8":
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(marker) + 2) + marker + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        body = b"tEXt" + b"soak\0" + marker
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        ihdr_end = 8 + 8 + 13 + 4
        return data[:ihdr_end] + chunk + data[ihdr_end:]
    raise ValueError("only JPEG and PNG sources can be varied")


def corpus_sources() -> tuple[list[bytes], list[bytes]]:
    """(good photos that can be varied, hostile files that must fail as DATA)."""
    good = [
        p.read_bytes()
        for p in sorted((CORPUS / "real").iterdir())
        if p.suffix.lower() in (".jpg", ".png") and p.stat().st_size < 1_500_000
    ]
    bad = [
        (CORPUS / "bad" / name).read_bytes()
        for name in ("truncated_jpeg.jpg", "missing-sos.jpg", "broken_data_stream.png")
    ]
    return good, bad


def plan_uploads(
    n: int, clients: int, good: list[bytes], bad: list[bytes], *, hostile: bool
) -> tuple[list[Plan], list[int]]:
    """``n`` uploads dealt round-robin to ``clients`` (with ``hostile``, one in 50 is a
    hostile file), and how often each good source photo is uploaded."""
    rng = random.Random(1)
    plans: list[Plan] = [[] for _ in range(clients)]
    uses = [0] * len(good)
    for i in range(n):
        client = i % clients
        if hostile and i % 50 == 7:
            plans[client].append((bad[i % len(bad)], True))
        else:
            source = rng.randrange(len(good))
            uses[source] += 1
            plans[client].append((unique_variant(good[source], f"soak-{i}"), False))
    return plans, uses
