"""Settings for tests: values replaced by their variables' names, as the code reads them."""

from __future__ import annotations

from typing import Any

import msgspec

from filmstrip.settings import Settings


def replace_settings(settings: Settings, **values: Any) -> Settings:
    """``settings`` with some values replaced, each named as its variable (``bus_port=…``)."""
    groups: dict[str, msgspec.Struct] = {}
    for group in msgspec.structs.fields(Settings):
        fields = msgspec.structs.fields(group.type)
        mine = {f.name: values.pop(f.encode_name) for f in fields if f.encode_name in values}
        groups[group.name] = msgspec.structs.replace(getattr(settings, group.name), **mine)
    if values:
        raise TypeError(f"no such settings: {', '.join(sorted(values))}")
    return msgspec.structs.replace(settings, **groups)
