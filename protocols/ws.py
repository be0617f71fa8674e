"""WebSocket messages between the bus and its clients, as tagged msgspec Structs."""

from __future__ import annotations

from typing import Any

import msgspec

# --- client -> bus ----------------------------------------------------------------------


class Identify(msgspec.Struct, frozen=True, tag="identify", kw_only=True):
    """Authenticate the socket and join the client's own room (and a session room)."""

    token: str | None = None
    client_id: str | None = None
    session_id: str | None = None


class Subscribe(msgspec.Struct, frozen=True, tag="subscribe", kw_only=True):
    photo_id: str


class Unsubscribe(msgspec.Struct, frozen=True, tag="unsubscribe", kw_only=True):
    photo_id: str


class Resume(msgspec.Struct, frozen=True, tag="resume", kw_only=True):
    last_event_id: str


class Ping(msgspec.Struct, frozen=True, tag="ping", kw_only=True):
    pass


ClientMessage = Identify | Subscribe | Unsubscribe | Resume | Ping

# --- bus -> client ----------------------------------------------------------------------


class Identified(msgspec.Struct, frozen=True, tag="identified", kw_only=True):
    socket_id: str
    client_id: str


class Subscribed(msgspec.Struct, frozen=True, tag="subscribed", kw_only=True):
    room: str


class Unsubscribed(msgspec.Struct, frozen=True, tag="unsubscribed", kw_only=True):
    room: str


class Pong(msgspec.Struct, frozen=True, tag="pong", kw_only=True):
    pass


class Error(msgspec.Struct, frozen=True, tag="error", kw_only=True):
    code: str
    message: str


class EventMessage(msgspec.Struct, frozen=True, kw_only=True):
    """An event delivered to a client. ``type`` is the seed's socket event name
    (``upload.event``, ``processing.event``, ``completion.event``); ``event`` is the
    event's own type such as ``photo.processing.completed``."""

    type: str
    id: str
    channel: str
    event: str
    photo_id: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    timestamp: str


ServerMessage = Identified | Subscribed | Unsubscribed | Pong | Error

SOCKET_EVENT_OF_CHANNEL = {
    "photo:upload": "upload.event",
    "photo:processing": "processing.event",
    "photo:completion": "completion.event",
}
