"""Write the schema files in ``protocols/schemas`` from the Structs (``filmstrip schemas``)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import msgspec
import orjson

from filmstrip.protocols import openapi
from filmstrip.protocols.events import DATA_OF_TYPE, Event
from filmstrip.protocols.jobs import PhotoProcessingJob
from filmstrip.protocols.ws import ClientMessage, EventMessage, ServerMessage

SCHEMA_DIR = Path(__file__).parent / "schemas"


def _schema(types: list[Any], title: str) -> dict[str, Any]:
    refs, components = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "oneOf" if len(refs) > 1 else "allOf": list(refs),
        "$defs": _clean_descriptions(components),
    }


def _clean_descriptions(node: Any) -> Any:
    """Docstring descriptions dedented the same way whatever msgspec does (0.23 started
    dedenting them itself), so the files depend on the code, not on msgspec's version."""
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v)
            if k == "description" and isinstance(v, str)
            else _clean_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(v) for v in node]
    return node


def render_all() -> dict[str, bytes]:
    """File name → exact bytes of every generated schema file."""
    docs = {
        "job.schema.json": _schema([PhotoProcessingJob], "PhotoProcessingJob"),
        "event.schema.json": _schema([Event], "Event (Redis pub/sub)"),
        "event-data.schema.json": _schema(
            list(DATA_OF_TYPE.values()), "Event data, by type: " + ", ".join(DATA_OF_TYPE)
        ),
        "ws-client.schema.json": _schema([ClientMessage], "WebSocket: client to bus"),
        "ws-server.schema.json": _schema([ServerMessage, EventMessage], "WebSocket: bus to client"),
        "openapi.json": openapi.document(),
    }
    opts = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return {name: orjson.dumps(doc, option=opts) + b"\n" for name, doc in docs.items()}


def write_all() -> list[Path]:
    """Regenerate every schema file; return their paths."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    written = []
    for name, data in render_all().items():
        path = SCHEMA_DIR / name
        path.write_bytes(data)
        written.append(path)
    return written
