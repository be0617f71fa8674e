"""Where a socket is in its client's event stream: the seam between replay and live.

Live events for one client arrive in stream order (one Lua call per publish, all on the
Redis, or the cluster node, that holds the client's stream; a cluster relays them to the
bus's node in that order), and a replay reads the same stream in order, so a socket needs
only:

* the highest id it has been sent (live events at or below it are duplicates);
* while a replay runs, a buffer of the live events that arrive meanwhile, flushed after
  the replay (skipping those the replay already sent);
* until its first ``resume``, the set of ids already sent live, because the client's
  ``last_event_id`` may be older than events the socket got between ``identified`` and
  ``resume``: those must not be sent twice, the others must not be skipped.
"""

from __future__ import annotations

from filmstrip.services.bus.streamid import ZERO, StreamId

_EARLY_CAP = 10_000


class BufferOverflow(RuntimeError):
    """Too many live events arrived during one replay: treat the socket as too slow."""


class DeliveryCursor:
    """Decides, for each event offered to a socket, whether to send it now, later or never."""

    __slots__ = ("_buffer", "_limit", "_replaying", "_sent_early", "high")

    def __init__(self, *, buffer_limit: int) -> None:
        self.high: StreamId = ZERO
        self._replaying = 0
        self._buffer: list[tuple[StreamId, bytes]] = []
        self._limit = buffer_limit
        # None once the socket has resumed: from then on ``high`` alone dedupes.
        self._sent_early: set[StreamId] | None = set()

    def offer_live(self, sid: StreamId, frame: bytes) -> bool:
        """True if ``frame`` should be sent now; buffers it during a replay."""
        if self._replaying:
            if len(self._buffer) >= self._limit:
                raise BufferOverflow("live events piled up during a replay")
            self._buffer.append((sid, frame))
            return False
        if sid <= self.high:
            return False
        self._sent(sid)
        return True

    def join_at(self, floor: StreamId) -> None:
        """The client's stream stood at ``floor`` when the socket identified: live events at
        or below it are history, which only a replay sends (in order). Their pub/sub copy
        can still arrive after ``identify``, and on a Redis Cluster it often does: it
        travels from the node that published it to the one the bus listens on."""
        if floor > self.high:
            self.high = floor

    def begin_replay(self) -> None:
        """Start holding live events back until :meth:`end_replay`."""
        self._replaying += 1

    def accept_replayed(self, sid: StreamId, after: StreamId, *, resume: bool) -> bool:
        """True if a replayed event ``sid`` (read after ``after``) should be sent."""
        if sid <= after:
            return False
        if resume and self._sent_early is not None:
            if sid in self._sent_early:
                return False
        elif sid <= self.high:
            return False
        self._sent(sid)
        return True

    def accept_backfill(self, sid: StreamId, *, newer_than: StreamId = ZERO) -> bool:
        """True if ``sid``, an event of a photo the socket has just joined that none of its
        other rooms received, should be sent: it may be below ``high`` (that photo's
        history comes after newer events of the socket's other rooms), never twice, and
        never at or below ``newer_than``, the newest event of that photo already sent."""
        if sid <= newer_than:
            return False
        if self._sent_early is not None and sid in self._sent_early:
            return False
        self._sent(sid)
        return True

    def end_replay(self, *, resumed: bool) -> list[bytes]:
        """Stop holding back; return the held live frames still to send, in order."""
        self._replaying -= 1
        if resumed:
            self._sent_early = None
        if self._replaying:
            return []
        out: list[bytes] = []
        for sid, frame in self._buffer:
            if sid > self.high:
                self._sent(sid)
                out.append(frame)
        self._buffer.clear()
        return out

    def _sent(self, sid: StreamId) -> None:
        if sid > self.high:
            self.high = sid
        if self._sent_early is not None:
            self._sent_early.add(sid)
            # A client that never resumes must not grow this forever; past the cap a late
            # resume falls back to ``high`` alone (it may then miss, never repeat).
            if len(self._sent_early) > _EARLY_CAP:
                self._sent_early = None
