"""Which rooms an event goes to (the seed's routing) and the names of rooms."""

from __future__ import annotations

from filmstrip.protocols.events import (
    CHANNEL_COMPLETION,
    CHANNEL_DELETION,
    CHANNEL_PROCESSING,
    CHANNEL_UPLOAD,
)


def client_room(client_id: str) -> str:
    return f"client:{client_id}"


def session_room(session_id: str) -> str:
    return f"session:{session_id}"


def photo_room(photo_id: str) -> str:
    return f"photo:{photo_id}"


def rooms_for(channel: str, photo_id: str, client_id: str, session_id: str | None) -> list[str]:
    """Upload → client and session rooms; processing → photo room; completion → photo and
    client rooms; deletion → client room (every socket of the client is in it). A socket
    in several of them still gets the event once."""
    if channel == CHANNEL_PROCESSING:
        return [photo_room(photo_id)]
    if channel == CHANNEL_COMPLETION:
        return [photo_room(photo_id), client_room(client_id)]
    if channel == CHANNEL_DELETION:
        return [client_room(client_id)]
    if channel == CHANNEL_UPLOAD:
        rooms = [client_room(client_id)]
        if session_id:
            rooms.append(session_room(session_id))
        return rooms
    return []
