"""The lifecycle of one socket as an explicit state machine.

connected --identify--> identified --close--> closing --> closed
    \\__________________close__________________/

Which client messages each state accepts is decided here, and nowhere else, so a message
in the wrong state always gets the same precise error.
"""

from __future__ import annotations

import enum

from filmstrip.protocols import ws


class State(enum.Enum):
    CONNECTED = "connected"  # upgraded, not yet identified
    IDENTIFIED = "identified"  # token checked; may join rooms and receive events
    CLOSING = "closing"  # a close was started; nothing more is read or sent
    CLOSED = "closed"


_NEXT: dict[State, frozenset[State]] = {
    State.CONNECTED: frozenset({State.IDENTIFIED, State.CLOSING}),
    State.IDENTIFIED: frozenset({State.CLOSING}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class TransitionError(RuntimeError):
    """A transition the machine does not allow: a bug in the caller."""


class Lifecycle:
    """Current state plus the rule for which message is allowed in it."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = State.CONNECTED

    def move(self, to: State) -> None:
        """Advance to ``to``; raise :class:`TransitionError` if not allowed from here."""
        if to not in _NEXT[self.state]:
            raise TransitionError(f"{self.state.value} -> {to.value}")
        self.state = to

    @property
    def open(self) -> bool:
        """Whether the socket still reads and sends."""
        return self.state in (State.CONNECTED, State.IDENTIFIED)

    def refusal(self, message: ws.ClientMessage) -> ws.Error | None:
        """The error to answer ``message`` with in this state, or None if it is allowed."""
        if isinstance(message, ws.Ping):
            return None
        if self.state is State.CONNECTED:
            if isinstance(message, ws.Identify):
                return None
            return ws.Error(
                code=ws.NOT_IDENTIFIED,
                message=f"send identify before {_type_of(message)}",
            )
        if self.state is State.IDENTIFIED:
            if isinstance(message, ws.Identify):
                return ws.Error(
                    code=ws.ALREADY_IDENTIFIED, message="this socket is already identified"
                )
            return None
        return ws.Error(code=ws.BAD_MESSAGE, message="the socket is closing")


def _type_of(message: ws.ClientMessage) -> str:
    return type(message).__struct_config__.tag  # type: ignore[return-value]
