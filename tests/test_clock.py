"""iso_utc: the events' and logs' timestamps, the same text datetime would give."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson
import pytest

from filmstrip.clock import iso_utc
from filmstrip.logs import JsonFormatter


@pytest.mark.parametrize("seconds", [0.0, 1764457200.0005, 1764457200.999, 1795000000.25])
def test_matches_datetime_at_milliseconds(seconds: float) -> None:
    expected = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    assert iso_utc(seconds) == expected.replace("+00:00", "Z")


def test_log_lines_carry_it() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.created = 1764457200.25
    line = orjson.loads(JsonFormatter("api").format(record))
    assert line["ts"] == "2025-11-29T23:00:00.250Z"
