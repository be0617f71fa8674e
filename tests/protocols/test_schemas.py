"""The schema files in protocols/schemas are exactly what the Structs generate."""

from __future__ import annotations

from filmstrip.protocols.generate import SCHEMA_DIR, render_all


def test_schema_files_are_current() -> None:
    stale = [
        name
        for name, data in render_all().items()
        if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_bytes() != data
    ]
    assert not stale, f"regenerate with `filmstrip schemas`: {stale}"


def test_no_unexpected_schema_files() -> None:
    expected = set(render_all())
    present = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert present == expected
