"""The README's settings table lists every setting, each with the code's default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from filmstrip.settings import Settings, variables

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_rows() -> dict[str, str]:
    """Each variable of the README's settings table → its default cell."""
    text = README.read_text()
    section = text[text.index("\n## Settings\n") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `(FILMSTRIP_\w+)`[^|]*\| ([^|]*) \|", section, flags=re.M)
    return dict(rows)


def code_defaults() -> dict[str, Any]:
    """Each variable the settings groups read → its default."""
    return {
        name: field.default
        for group in msgspec.structs.fields(Settings)
        for name, field in variables(group.type).items()
    }


def shown(value: Any) -> str:
    """A default as the table writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_table_lists_every_setting_and_no_other() -> None:
    rows, code = readme_rows(), code_defaults()
    missing = [f"| `{name}` | `{shown(code[name])}` | … |" for name in code if name not in rows]
    assert not missing, "README's settings table lacks:\n" + "\n".join(missing)
    extra = sorted(rows.keys() - code.keys())
    assert not extra, f"README's settings table lists what the code does not read: {extra}"


def test_the_table_shows_the_code_s_defaults() -> None:
    rows = readme_rows()
    for name, default in code_defaults().items():
        if default in ("", None):
            continue  # made at start from other settings: the table says from what
        literal = re.match(r"`([^`]*)`", rows.get(name, ""))
        assert literal and literal.group(1) == shown(default), (name, rows.get(name))
