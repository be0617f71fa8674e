"""JSON log lines: one object per line, whatever the values hold."""

from __future__ import annotations

import logging

import orjson

from filmstrip.logs import JsonFormatter


def test_a_value_that_was_not_utf8_is_escaped_not_lost() -> None:
    """aiohttp decodes a request's path with ``surrogateescape``; logging such a path must
    still write its line (JSON cannot carry lone surrogates)."""
    record = logging.LogRecord("filmstrip.api", logging.INFO, __file__, 1, "request", None, None)
    record.path = "/static/\udcff\udcfe.css"
    record.status = 400
    line = orjson.loads(JsonFormatter("api").format(record))
    assert line["path"] == "/static/\\udcff\\udcfe.css"
    assert (line["status"], line["msg"], line["role"]) == (400, "request", "api")
