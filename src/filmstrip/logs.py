"""Structured logs that carry the current ``trace_id``: JSON lines, or one readable line
per event (with its fields) for a terminal."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import datetime
from typing import Any

import orjson

from filmstrip.clock import iso_utc

trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# ANSI colours of the roles' names and of the levels above INFO, on a terminal.
_COLOURS = {"api": 36, "worker": 35, "bus": 32, "dev": 34, "WARNING": 33, "ERROR": 31}
_SHOWN = ("ts", "level", "logger", "role", "msg", "trace_id", "exc")


def fields_of(record: logging.LogRecord, role: str) -> dict[str, Any]:
    """A record as the fields a log line carries: time, level, logger, role, msg,
    trace_id, any extras and the exception."""
    out: dict[str, Any] = {
        "ts": iso_utc(record.created),
        "level": record.levelname,
        "logger": record.name,
        "role": role,
        "msg": record.getMessage(),
    }
    trace = getattr(record, "trace_id", None) or trace_id_var.get()
    if trace:
        out["trace_id"] = trace
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key not in out:
            out[key] = value
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


def readable(fields: dict[str, Any], *, colour: bool = False) -> str:
    """One line for people: ``12:00:01 api    201 POST /v1/photos 12 ms photo_id=…``."""
    role = str(fields.get("role", ""))
    head = f"{_local_time(fields.get('ts'))} {_paint(f'{role:<6}', role, colour)}"
    level = str(fields.get("level", "INFO"))
    if level != "INFO":
        head += " " + _paint(level, level, colour)
    rest = {k: v for k, v in fields.items() if k not in _SHOWN}
    if fields.get("msg") == "request" and {"method", "path", "status", "ms"} <= rest.keys():
        msg = f"{rest.pop('status')} {rest.pop('method')} {rest.pop('path')} {rest.pop('ms')} ms"
    else:
        msg = str(fields.get("msg", ""))
        if not str(fields.get("logger", "filmstrip")).startswith("filmstrip"):
            msg = f"{fields['logger']}: {msg}"
    if fields.get("trace_id"):
        rest["trace"] = str(fields["trace_id"])[:8]
    parts = [head, msg, *(f"{k}={_value(v)}" for k, v in rest.items())]
    line = " ".join(parts)
    return line + ("\n" + str(fields["exc"]) if fields.get("exc") else "")


def _local_time(ts: Any) -> str:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).astimezone().strftime("%X")
    except ValueError:
        return "--:--:--"


def _paint(text: str, key: str, colour: bool) -> str:
    code = _COLOURS.get(key)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def _value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c in value for c in ' "=\n'):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:  # lone surrogates
        return repr(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, role, trace_id and any extras."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        out = fields_of(record, self.role)
        try:
            return orjson.dumps(out, default=str).decode()
        except orjson.JSONEncodeError:
            # A value holding lone surrogates (a hostile request's path, say): JSON cannot
            # carry them, so escape them rather than lose the line.
            return orjson.dumps({k: _escaped(v) for k, v in out.items()}, default=str).decode()


class ReadableFormatter(logging.Formatter):
    """:func:`readable` lines, the role's name coloured with ``colour``."""

    def __init__(self, role: str, *, colour: bool = False) -> None:
        super().__init__()
        self.role = role
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        return readable(fields_of(record, self.role), colour=self.colour)


def _escaped(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def setup_logging(role: str, *, level: str = "INFO", json: bool | None = None) -> None:
    """Route the root logger to stderr: JSON lines with ``json``, readable ones (coloured
    on a terminal) without; None chooses readable lines on a terminal, else JSON."""
    handler = logging.StreamHandler(sys.stderr)
    terminal = sys.stderr.isatty()
    if json if json is not None else not terminal:
        handler.setFormatter(JsonFormatter(role))
    else:
        handler.setFormatter(ReadableFormatter(role, colour=terminal))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats what our middleware logs with the trace id.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # libvips narrates every operation at INFO.
    logging.getLogger("pyvips").setLevel(logging.WARNING)
