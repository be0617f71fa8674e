"""Settings for tests: values replaced by their variables' names, as the code reads them."""

from __future__ import annotations

from typing import Any

import msgspec

from filmstrip.embedded.redis_server import free_port
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


def unreachable_s3(settings: Settings, port: int | None = None) -> Settings:
    """``settings`` with an S3 blob store at an endpoint nobody listens on (``port``, by
    default a free one): every call fails as a real outage does."""
    return replace_settings(
        settings,
        blob_url="s3://photos",
        s3_endpoint_url=f"http://127.0.0.1:{port or free_port()}",
        s3_access_key_id="test",
        s3_secret_access_key="test",
    )
