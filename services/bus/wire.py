"""Published events as the bus reads them, and as it writes them to sockets.

``data`` and ``metadata`` stay raw JSON: the bus routes on a few fields and never needs to
parse or re-encode the payload, so one event costs one small decode and one encode however
many sockets receive it.
"""

from __future__ import annotations

import msgspec

from filmstrip.protocols.events import EventMetadata
from filmstrip.protocols.ws import SOCKET_EVENT_OF_CHANNEL
from filmstrip.services.bus import streamid
from filmstrip.services.bus.routing import rooms_for


class _Published(msgspec.Struct, frozen=True, kw_only=True):
    """The publisher's :class:`filmstrip.protocols.events.Event`, with the payload left raw."""

    type: str
    channel: str
    photo_id: str
    data: msgspec.Raw
    metadata: msgspec.Raw
    timestamp: str


class _Routing(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    session_id: str | None = None
    trace_id: str = ""


class _Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """Same fields, same order as :class:`filmstrip.protocols.ws.EventMessage`."""

    type: str
    id: str
    channel: str
    event: str
    photo_id: str
    data: msgspec.Raw
    metadata: msgspec.Raw
    timestamp: str


_published = msgspec.json.Decoder(_Published)
_routing = msgspec.json.Decoder(_Routing)
_encoder = msgspec.json.Encoder()


class RoutedEvent(msgspec.Struct, frozen=True):
    """One event ready to deliver: its id, rooms, owner, trace id, the frame to send, and
    the photo and event type it is about."""

    id: streamid.StreamId
    rooms: list[str]
    client_id: str
    trace_id: str
    frame: bytes
    photo_id: str
    type: str


class BadEvent(ValueError):
    """A published message the bus cannot route (logged and skipped)."""


def route(stream_id: str | bytes, body: bytes | str) -> RoutedEvent:
    """Decode one published event (its stream id and JSON) into a :class:`RoutedEvent`."""
    try:
        ev = _published.decode(body)
        meta = _routing.decode(ev.metadata)
        sid = streamid.parse(stream_id)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise BadEvent(str(exc)) from None
    id_text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    frame = _encoder.encode(
        _Outgoing(
            type=SOCKET_EVENT_OF_CHANNEL.get(ev.channel, "event"),
            id=id_text,
            channel=ev.channel,
            event=ev.type,
            photo_id=ev.photo_id,
            data=ev.data,
            metadata=ev.metadata,
            timestamp=ev.timestamp,
        )
    )
    return RoutedEvent(
        id=sid,
        rooms=rooms_for(ev.channel, ev.photo_id, meta.client_id, meta.session_id),
        client_id=meta.client_id,
        trace_id=meta.trace_id,
        frame=frame,
        photo_id=ev.photo_id,
        type=ev.type,
    )


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """A pub/sub message ``b"<stream id> <json>"`` → ``(stream id, json)``."""
    sid, sep, body = message.partition(b" ")
    if not sep:
        raise BadEvent("published message has no stream id")
    return sid, body


__all__ = ["BadEvent", "EventMetadata", "RoutedEvent", "route", "split_message"]
