"""Parsing client frames and encoding bus frames; no I/O here."""

from __future__ import annotations

import msgspec

from filmstrip.protocols import ws

_decoder = msgspec.json.Decoder(ws.ClientMessage)
_encoder = msgspec.json.Encoder()


class BadMessage(ValueError):
    """A frame that is not one of the client messages; ``str`` says why."""


def decode(frame: str | bytes) -> ws.ClientMessage:
    """The client message in ``frame``; raise :class:`BadMessage` if it is not one."""
    try:
        message: ws.ClientMessage = _decoder.decode(frame)
        return message
    except msgspec.ValidationError as exc:
        raise BadMessage(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    except RecursionError:
        # A frame of nested brackets under the size limit is deeper than the interpreter's limit.
        raise BadMessage("nested too deeply") from None


def encode(message: ws.ServerMessage) -> bytes:
    """The JSON text of a bus message."""
    return _encoder.encode(message)
