"""This process's rooms: which local sockets are in which room."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

Member = TypeVar("Member")


class Rooms(Generic[Member]):
    """room name → members, kept in step with each member's own set of rooms."""

    def __init__(self) -> None:
        self._members: dict[str, set[Member]] = {}

    def join(self, room: str, member: Member) -> None:
        self._members.setdefault(room, set()).add(member)

    def leave(self, room: str, member: Member) -> None:
        members = self._members.get(room)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self._members[room]

    def leave_all(self, rooms: Iterable[str], member: Member) -> None:
        for room in rooms:
            self.leave(room, member)

    def members(self, rooms: Iterable[str]) -> set[Member]:
        """Everyone in any of ``rooms``, each once."""
        out: set[Member] = set()
        for room in rooms:
            members = self._members.get(room)
            if members:
                out |= members
        return out

    def __len__(self) -> int:
        return len(self._members)
