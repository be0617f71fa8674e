"""WebSocket messages between the bus and its clients, as tagged msgspec Structs.

Every frame is one JSON object whose ``type`` names the message. The protocol is documented
in ``services/bus/README.md``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

# Stream ids as Redis writes them (``<ms>-<seq>``); ``0`` / ``0-0`` means "from the start".
# Each part is a 64-bit number in Redis; 19 digits keep every id the pattern admits below
# 2^64 (a 20-digit part could pass it and make Redis refuse the replay), and ids Redis
# makes are milliseconds (13 digits) and small sequence numbers.
EventId = Annotated[str, msgspec.Meta(pattern=r"^\d{1,19}(-\d{1,19})?$", max_length=39)]
# Ids are opaque to the bus but bounded so a hostile frame cannot make us query junk.
ShortId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

# --- client -> bus ----------------------------------------------------------------------
# Unknown fields are refused (bad_message): a client that sends client_id must learn that
# the token, not the socket, decides who it is.


class _FromClient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


# Photos an ``identify`` may name; more are followed with ``subscribe``.
MAX_IDENTIFY_PHOTOS = 100


class Identify(_FromClient, frozen=True, tag="identify"):
    """Authenticate with an API token; join the client's room, if given one of its upload
    sessions' rooms, and the rooms of ``photo_ids`` that are the client's (``identified``
    lists those joined). Events flow at once. With ``last_event_id`` the socket first
    replays the events after it that its rooms would have received, in order, then
    ``resumed``, then live events: reconnecting in one message."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    session_id: ShortId | None = None
    last_event_id: EventId | None = None
    photo_ids: Annotated[list[ShortId], msgspec.Meta(max_length=MAX_IDENTIFY_PHOTOS)] = []


class Subscribe(_FromClient, frozen=True, tag="subscribe"):
    """Join the room of a photo the client owns; after ``subscribed`` come the events the
    photo published that this socket did not get (since it identified, or since its
    ``last_event_id``) and newer than any of the photo it was sent, in order, then its live
    ones."""

    photo_id: ShortId


class Unsubscribe(_FromClient, frozen=True, tag="unsubscribe"):
    photo_id: ShortId


class Resume(_FromClient, frozen=True, tag="resume"):
    """Replay the events after ``last_event_id`` that this socket's rooms would have
    received and it has not been sent, in order, then continue live. Events sent live
    between ``identify`` and ``resume`` are not held back for it: for strict order, put
    ``last_event_id`` in ``identify`` instead."""

    last_event_id: EventId


class Ping(_FromClient, frozen=True, tag="ping"):
    """Application-level ping (WebSocket pings are answered by the transport too)."""


ClientMessage = Identify | Subscribe | Unsubscribe | Resume | Ping

# --- bus -> client ----------------------------------------------------------------------


class Identified(msgspec.Struct, frozen=True, tag="identified", kw_only=True):
    """``last_event_id`` is the id of the client's newest event when the socket identified
    (if none, an id for that moment): a client that has seen no event yet resumes from it
    after a drop, so what was published while it reconnected is replayed, not missed."""

    socket_id: str
    client_id: str
    last_event_id: str
    #: The photos of ``identify``'s ``photo_ids`` whose rooms the socket joined (those
    #: that are the client's).
    photo_ids: list[str] = []


class Subscribed(msgspec.Struct, frozen=True, tag="subscribed", kw_only=True):
    room: str


class Unsubscribed(msgspec.Struct, frozen=True, tag="unsubscribed", kw_only=True):
    room: str


class Resumed(msgspec.Struct, frozen=True, tag="resumed", kw_only=True):
    """Replay is over; live events follow. ``truncated`` means the replay stream no longer
    holds every event after ``last_event_id`` (trimmed by length or age), or may not (that id
    is older than the replay window)."""

    replayed: int
    last_event_id: str
    truncated: bool


class Pong(msgspec.Struct, frozen=True, tag="pong", kw_only=True):
    pass


class Error(msgspec.Struct, frozen=True, tag="error", kw_only=True):
    """``code`` is one of :data:`ERROR_CODES`; ``message`` is for humans."""

    code: str
    message: str


class EventMessage(msgspec.Struct, frozen=True, kw_only=True):
    """An event delivered to a client. ``type`` is the seed's socket event name
    (``upload.event``, ``processing.event``, ``completion.event``, ``deletion.event``);
    ``event`` is the event's own type such as ``photo.processing.completed``; ``id`` is its
    position in the client's replay stream, the value to pass to ``resume``."""

    type: str
    id: str
    channel: str
    event: str
    photo_id: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    timestamp: str


ServerMessage = Identified | Subscribed | Unsubscribed | Resumed | Pong | Error

SOCKET_EVENT_OF_CHANNEL = {
    "photo:upload": "upload.event",
    "photo:processing": "processing.event",
    "photo:completion": "completion.event",
    "photo:deletion": "deletion.event",
}

# --- error codes --------------------------------------------------------------------------

BAD_MESSAGE = "bad_message"  # not JSON, unknown type, or a field of the wrong shape
UNAUTHORIZED = "unauthorized"  # unknown or revoked token (the socket is then closed)
FORBIDDEN = "forbidden"  # a room the client does not own
NOT_IDENTIFIED = "not_identified"  # a message that needs ``identify`` first
ALREADY_IDENTIFIED = "already_identified"
RATE_LIMITED = "rate_limited"  # too many messages; this one was dropped
TOO_MANY_SOCKETS = "too_many_sockets"  # the client has too many sockets (on all buses)
UNAVAILABLE = "unavailable"  # the catalog or Redis did not answer; try again
TOO_MANY_ROOMS = "too_many_rooms"  # the socket follows too many photos already
ERROR_CODES = (
    BAD_MESSAGE,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_IDENTIFIED,
    ALREADY_IDENTIFIED,
    RATE_LIMITED,
    TOO_MANY_SOCKETS,
    UNAVAILABLE,
    TOO_MANY_ROOMS,
)

# --- close codes --------------------------------------------------------------------------

CLOSE_GOING_AWAY = 1001  # bus shutting down: reconnect (elsewhere) and resume
CLOSE_POLICY = 1008  # unauthorized or revoked token, identify timeout, too many sockets
CLOSE_TOO_BIG = 1009  # a frame over the size limit
CLOSE_SERVICE_RESTART = 1012  # events could not be replayed: reconnect and resume
CLOSE_TRY_AGAIN_LATER = 1013  # the client did not read its events fast enough
