"""The bus's client message decoder under arbitrary bytes and JSON: it returns a client
message or raises its declared ``BadMessage``, nothing else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from filmstrip.protocols import ws
from filmstrip.services.bus import codec
from tests.security.hypothesis_async import FUZZ

_TYPES = ["identify", "subscribe", "unsubscribe", "resume", "ping", "pong", "", "IDENTIFY"]
_FIELDS = ["type", "token", "session_id", "photo_id", "last_event_id", "extra"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@st.composite
def message_like(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like client messages, with wrong or missing fields."""
    out: dict[str, Any] = {"type": draw(st.sampled_from(_TYPES) | st.text(max_size=12))}
    for field in draw(st.lists(st.sampled_from(_FIELDS), max_size=4)):
        out[field] = draw(json_values | st.text(min_size=0, max_size=600))
    return out


def _decode(frame: str | bytes) -> None:
    try:
        message = codec.decode(frame)
    except codec.BadMessage as exc:
        assert str(exc)
        return
    assert isinstance(message, ws.Identify | ws.Subscribe | ws.Unsubscribe | ws.Resume | ws.Ping)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes(frame: bytes) -> None:
    _decode(frame)


@FUZZ
@given(st.text(max_size=600))
def test_arbitrary_text(frame: str) -> None:
    _decode(frame)


@FUZZ
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    # The stdlib encoder: it writes integers past 64 bits, and NaN, as a client might.
    _decode(json.dumps(value))


@FUZZ
@given(message_like())
def test_message_shaped_json(value: dict[str, Any]) -> None:
    _decode(json.dumps(value))


def test_deeply_nested_json_is_a_bad_message() -> None:
    # Within the bus's frame limit, deeper than Python's recursion limit; the last ones as
    # deep as the default limit (32 KiB) lets a frame go.
    _decode("[" * 2000 + "]" * 2000)
    _decode("[" * 16_000 + "]" * 16_000)
    _decode('{"x":' + "[" * 16_000 + "]" * 16_000 + ',"type":"ping"}')
    _decode('{"type": "ping", "x": ' + "[" * 2000 + "]" * 2000 + "}")
    _decode('{"type": "identify", "token": ' + '{"a":' * 800 + "1" + "}" * 800 + "}")
