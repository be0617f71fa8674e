"""The pure parts: message decoding, the lifecycle's refusals, the delivery cursor, the hub's
owner check and the subscription's parsing."""

from __future__ import annotations

from typing import cast

import orjson
import pytest

from filmstrip.protocols import events as ev
from filmstrip.protocols import ws
from filmstrip.services.bus import codec, cursor, streamid, subscriber
from filmstrip.services.bus.connection import Connection
from filmstrip.services.bus.cursor import BufferOverflow, DeliveryCursor
from filmstrip.services.bus.hub import Hub
from filmstrip.services.bus.lifecycle import Lifecycle, State, TransitionError
from filmstrip.services.bus.replay import ReplayReader
from filmstrip.services.bus.routing import photo_room
from filmstrip.services.bus.streamid import StreamId


def test_decode_accepts_each_client_message() -> None:
    assert codec.decode('{"type":"identify","token":"t","session_id":"s"}') == ws.Identify(
        token="t", session_id="s"
    )
    assert codec.decode(b'{"type":"resume","last_event_id":"17-2"}') == ws.Resume(
        last_event_id="17-2"
    )
    assert codec.decode('{"type":"ping"}') == ws.Ping()


@pytest.mark.parametrize(
    "frame",
    ["", "{", "null", '{"type":"identify"}', '{"type":"identify","token":""}',
     '{"type":"resume","last_event_id":"1-2-3"}', '{"type":"subscribe","photo_id":7}',
     '{"type":"ping","extra":1}',
     # Under the frame cap, yet deeper than the interpreter's recursion limit: msgspec
     # looks for the tag past the nested value and raises RecursionError, not a
     # ValidationError.
     '{"x":' + "[" * 1500 + "]" * 1500 + ',"type":"ping"}'],
)  # fmt: skip
def test_decode_refuses_bad_frames(frame: str) -> None:
    with pytest.raises(codec.BadMessage):
        codec.decode(frame)


def test_a_bare_millisecond_id_means_its_first_sequence_number() -> None:
    """``"<ms>"`` is ``<ms>-0`` (as in Redis): a resume from it replays ``<ms>-1``."""
    assert streamid.parse("1700000000000") == (1700000000000, 0)
    assert streamid.parse(b"0") == streamid.ZERO
    assert streamid.parse("1700000000000-1") > streamid.parse("1700000000000")


def test_lifecycle_refuses_messages_in_the_wrong_state() -> None:
    life = Lifecycle()
    sub = ws.Subscribe(photo_id="p")
    refusal = life.refusal(sub)
    assert refusal == ws.Error(code="not_identified", message="send identify before subscribe")
    assert life.refusal(ws.Identify(token="t")) is None
    life.move(State.IDENTIFIED)
    assert life.refusal(sub) is None
    refusal = life.refusal(ws.Identify(token="t"))
    assert refusal is not None and refusal.code == "already_identified"
    life.move(State.CLOSING)
    assert not life.open
    with pytest.raises(TransitionError):
        life.move(State.IDENTIFIED)


def test_cursor_drops_live_duplicates() -> None:
    cur = DeliveryCursor(buffer_limit=10)
    assert cur.offer_live((5, 0), b"a")
    assert not cur.offer_live((5, 0), b"a")
    assert not cur.offer_live((4, 9), b"old")
    assert cur.offer_live((5, 1), b"b")


def test_cursor_seam_replays_the_gap_then_flushes_held_live_events_once() -> None:
    cur = DeliveryCursor(buffer_limit=10)
    assert cur.offer_live((3, 0), b"live-3")  # got live before the client resumed
    cur.begin_replay()
    assert not cur.offer_live((6, 0), b"live-6")  # arrives during the replay: held
    after = (1, 0)
    sent = [sid for sid in [(2, 0), (3, 0), (4, 0), (5, 0), (6, 0)]
            if cur.accept_replayed(sid, after, resume=True)]  # fmt: skip
    assert sent == [(2, 0), (4, 0), (5, 0), (6, 0)]  # 3 was sent live already
    assert cur.end_replay(resumed=True) == []  # 6 came with the replay: not twice
    assert not cur.offer_live((6, 0), b"live-6")
    assert cur.offer_live((7, 0), b"live-7")


@pytest.mark.parametrize("resumed", [True, False], ids=["resume", "catch-up"])
def test_cursor_flushes_held_live_events_in_stream_order(resumed: bool) -> None:
    cur = DeliveryCursor(buffer_limit=10)
    cur.begin_replay()
    for n in (4, 5, 6, 7):  # arrive live during the replay: held
        assert not cur.offer_live((n, 0), f"live-{n}".encode())
    sent = [sid for sid in [(2, 0), (3, 0), (4, 0)]
            if cur.accept_replayed(sid, (1, 0), resume=resumed)]  # fmt: skip
    assert sent == [(2, 0), (3, 0), (4, 0)]
    # 4 came with the replay; the rest follow it in stream order, each once.
    assert cur.end_replay(resumed=resumed) == [b"live-5", b"live-6", b"live-7"]
    assert not cur.offer_live((7, 0), b"live-7")
    assert cur.offer_live((8, 0), b"live-8")


def test_cursor_sends_nothing_twice_after_the_first_resume() -> None:
    """Once ``high`` alone dedupes: a catch-up replay skips the event at ``high`` itself, and
    a photo joined later backfills only what no room of the socket received."""
    cur = DeliveryCursor(buffer_limit=10)
    cur.begin_replay()
    assert cur.end_replay(resumed=True) == []
    assert cur.offer_live((5, 0), b"live-5")
    cur.begin_replay()
    sent = [sid for sid in [(4, 0), (5, 0), (6, 0)]
            if cur.accept_replayed(sid, (1, 0), resume=False)]  # fmt: skip
    assert sent == [(6, 0)]
    assert cur.end_replay(resumed=False) == []
    fresh = DeliveryCursor(buffer_limit=10)  # before any resume: a live copy sent already
    assert fresh.offer_live((5, 0), b"live-5")
    assert not fresh.accept_backfill((5, 0))
    assert fresh.accept_backfill((3, 0)) and not fresh.accept_backfill((3, 0))


def test_cursor_of_a_socket_that_never_resumes_stops_keeping_ids_at_its_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ids sent before a first resume are kept up to a cap, then dropped (a socket
    that never resumes must not grow forever): a late resume then dedupes by ``high``
    alone, and may miss an event, never repeat one."""
    monkeypatch.setattr(cursor, "_EARLY_CAP", 3)
    cur = DeliveryCursor(buffer_limit=10)
    for n in (2, 3, 4, 5):  # (1, 0) never came live
        assert cur.offer_live((n, 0), b"live")
    cur.begin_replay()
    assert not cur.accept_replayed((1, 0), (0, 0), resume=True)
    assert cur.accept_replayed((6, 0), (0, 0), resume=True)


class _Socket:
    """What ``Hub.publish`` uses of a connection: its client and the offer of a frame."""

    socket_id = "s"

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.got: list[StreamId] = []

    def offer_live(self, sid: StreamId, frame: bytes) -> bool:
        self.got.append(sid)
        return True


def test_the_hub_sends_no_socket_another_clients_event() -> None:
    """Rooms are joined only after authorization; should a bug ever put a socket in
    another client's photo room, the hub still leaves that client's events out."""
    hub = Hub(cast(ReplayReader, None))  # publish never reads the replay stream
    alice, mallory = _Socket("c_alice"), _Socket("c_mallory")
    for sock in (alice, mallory):
        hub.rooms.join(photo_room("p_alice"), cast(Connection, sock))
    body = orjson.dumps({
        "type": ev.PHOTO_PROCESSING_STARTED, "channel": ev.CHANNEL_PROCESSING,
        "photo_id": "p_alice", "data": {}, "metadata": {"client_id": "c_alice"},
        "timestamp": "2026-01-01T00:00:00Z",
    })  # fmt: skip
    hub.publish(b"1700000000000-0 " + body)
    assert (alice.got, mallory.got, hub.delivered) == ([(1700000000000, 0)], [], 1)


async def test_the_subscription_hands_on_each_message_once_across_chunks() -> None:
    """What a chunk parsed is dropped from the buffer: the next chunk neither hands the
    earlier messages on again nor makes the buffer grow with every event."""
    got: list[bytes] = []
    proto = subscriber._Protocol(got.append, lambda: None)
    one = b"*3\r\n$7\r\nmessage\r\n$12\r\nphoto:upload\r\n$3\r\n1-0\r\n"
    two = b"*3\r\n$7\r\nmessage\r\n$12\r\nphoto:upload\r\n$3\r\n2-0\r\n"
    proto.data_received(one + two[:10])
    proto.data_received(two[10:])
    assert got == [b"1-0", b"2-0"]
    assert not proto._buf


def test_cursor_overflow_during_replay() -> None:
    cur = DeliveryCursor(buffer_limit=2)
    cur.begin_replay()
    cur.offer_live((1, 0), b"1")
    cur.offer_live((2, 0), b"2")
    with pytest.raises(BufferOverflow):
        cur.offer_live((3, 0), b"3")


def test_resp_parses_pubsub_frames_split_anywhere() -> None:
    from filmstrip.compat import redis as resp

    frame = (
        b"*3\r\n$9\r\nsubscribe\r\n$12\r\nphoto:upload\r\n:1\r\n"
        b'*3\r\n$7\r\nmessage\r\n$16\r\nphoto:processing\r\n$11\r\n1-0 {"a":1}\r\n'
        b"-ERR nope\r\n+OK\r\n"
    )
    expected = [
        [b"subscribe", b"photo:upload", 1],
        [b"message", b"photo:processing", b'1-0 {"a":1}'],
    ]
    for cut in range(len(frame)):
        values = []
        buf = bytearray(frame[:cut])
        pos = 0
        for chunk in (frame[cut:],):
            try:
                while pos < len(buf):
                    value, pos = resp.parse(buf, pos)
                    values.append(value)
            except resp.Incomplete:
                pass
            buf += chunk
            while pos < len(buf):
                value, pos = resp.parse(buf, pos)
                values.append(value)
        assert values[:2] == expected, cut
        assert isinstance(values[2], resp.RespError) and str(values[2]) == "ERR nope"
        assert values[3] == b"OK"
    assert resp.command("SUBSCRIBE", "a") == b"*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n"
