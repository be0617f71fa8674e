"""Structured JSON logs that carry the current ``trace_id``."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

import orjson

from filmstrip.clock import iso_utc

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, role, trace_id and any extras."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "role": self.role,
            "msg": record.getMessage(),
        }
        trace = getattr(record, "trace_id", None) or trace_id_var.get()
        if trace:
            out["trace_id"] = trace
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(out, default=str).decode()
        except orjson.JSONEncodeError:
            # A value holding lone surrogates (a hostile request's path, say): JSON cannot
            # carry them, so escape them rather than lose the line.
            return orjson.dumps({k: _escaped(v) for k, v in out.items()}, default=str).decode()


def _escaped(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def setup_logging(role: str, *, level: str = "INFO", json: bool = True) -> None:
    """Route the root logger to stderr, as JSON lines unless ``json`` is False."""
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(JsonFormatter(role))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {role} %(levelname)s %(name)s %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats what our middleware logs with the trace id.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # libvips narrates every operation at INFO.
    logging.getLogger("pyvips").setLevel(logging.WARNING)
