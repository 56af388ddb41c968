"""The inspector's recorder: bounded rings, acks matched to their sends, reasons on state changes."""

from __future__ import annotations

import pytest

from pyrt.engine.actions import (
    CloseSocket,
    DeliverPresence,
    DeliverPublication,
    Reconnecting,
    SendFrame,
    SubscriptionConfirmed,
)
from pyrt.engine.inspect import Recorder, describe_websocket, summarize
from pyrt.engine.states import Closed, State, StateChanged
from pyrt.engine.websocket import WebSocketEngine
from pyrt.wire import codec
from pyrt.wire.frames import Ack, ErrorFrame, Member, Message, Publication, Publish
from pyrt.wire.protocols import PyrtProtocol
from pyrt.wire.sse import ServerSentEvent


def recorder(limit: int = 50) -> Recorder:
    return Recorder(PyrtProtocol(), limit)


def test_an_ack_is_matched_to_the_send_that_asked_for_it_with_its_round_trip() -> None:
    r = recorder()
    r.frame_out(codec.encode(Publish(channel="chat", data="hi", id="a1", event=None)), now=10.0)
    r.frame_in(codec.encode(Ack(id="a1", ok=True, data="5")), now=10.042)
    sent, acked = r.frames()
    assert (sent.direction, sent.ack_id, acked.ack_id) == ("out", "a1", "a1")
    assert acked.matched == 'answers publish #a1 chat "hi" (42 ms)'


def test_a_refusal_is_matched_too_and_shows_its_code_and_retry_after() -> None:
    r = recorder()
    r.frame_out(codec.encode(Message(data=1, id="m1")), now=1.0)
    r.frame_in(
        codec.encode(ErrorFrame(code="rate_limited", message="slow", id="m1", retry_after=0.5)), now=1.01
    )
    refusal = r.frames()[1]
    assert refusal.summary == "error rate_limited #m1 slow retry after 0.5 s"
    assert refusal.matched == "answers message #m1 1 (10 ms)"


def test_an_ack_nobody_sent_is_shown_unmatched() -> None:
    r = recorder()
    r.frame_in(codec.encode(Ack(id="zz", ok=True)), now=1.0)
    assert r.frames()[0].matched == ""


def test_a_resend_says_when_it_was_first_sent() -> None:
    r = recorder()
    frame = codec.encode(Message(data={"n": 1}, id="m1"))
    r.frame_out(frame, now=1.0)
    r.frame_out(frame, now=3.5)
    assert r.frames()[1].matched == "sent again, first 2500 ms earlier"


def test_every_ring_is_bounded() -> None:
    r = recorder(limit=5)
    for i in range(1000):
        r.frame_out(codec.encode(Message(data=i, id=f"id{i}")), now=float(i))
        r.actions([StateChanged(State.OPEN, State.RECONNECTING)], now=float(i))
        r.rtt(i / 1000)
    assert len(r.frames()) == len(r.timeline) == len(r.rtts) == 5
    assert r.frames()[-1].summary == "message #id999 999"


def test_a_state_change_takes_its_reason_from_the_actions_that_come_with_it() -> None:
    r = recorder()
    r.actions(
        [
            CloseSocket(4000, "heartbeat timeout", True),
            StateChanged(State.OPEN, State.RECONNECTING),
            Reconnecting(attempt=1, delay=0.25, reason="no pong for 2.0 s"),
        ],
        now=5.0,
    )
    (entry,) = r.timeline
    assert (entry.old, entry.new) == ("open", "reconnecting")
    assert "heartbeat timeout" in entry.reason


def test_the_close_of_a_client_gives_its_detail_and_code() -> None:
    r = recorder()
    closed = Closed(None, "closed by the server", code=4403, reason="forbidden")
    r.actions([StateChanged(State.OPEN, State.CLOSED), closed], now=1.0)
    assert r.timeline[0].reason == "closed by the server (code 4403)"


def test_sent_frames_of_an_action_batch_are_recorded_by_the_caller_not_here() -> None:
    r = recorder()
    r.actions([SendFrame(codec.encode(Message(data=1)))], now=1.0)
    assert r.frames() == ()


def test_recoveries_gaps_and_presence_become_notes() -> None:
    r = recorder()
    gap = Publication(channel="c", offset="8", data=1, recovered=False)
    member = Member(channel="c", client="k", user=None, info=None)
    r.actions(
        [
            SubscriptionConfirmed(channel="c", offset="7", recovered=False),
            DeliverPublication(handler=None, publication=gap),
            DeliverPresence(handler=None, joined=(member,), left=()),
        ],
        now=1.0,
    )
    assert [(n.topic, n.text) for n in r.notes] == [
        ("channel c", "subscribed at 7, gap: the server could not replay everything missed"),
        ("channel c", "delivered after a gap: offset 8"),
        ("presence", "+1 -0"),
    ]


def test_a_batch_is_shown_frame_by_frame() -> None:
    r = recorder()
    batch = codec.encode_batch([codec.encode(Message(data=1)), codec.encode(Message(data=2))])
    r.frame_in(batch, now=1.0)
    assert [f.summary for f in r.frames()] == ["message 1", "message 2"]


def test_a_frame_that_does_not_decode_is_shown_as_its_first_characters() -> None:
    r = recorder()
    r.frame_out("not json at all", now=1.0)
    r.frame_out(b"\x00\x01", now=1.0)
    assert [f.summary for f in r.frames()] == ["not json at all", "binary 2 B"]


def test_a_long_payload_is_cut() -> None:
    assert summarize(Message(data="x" * 500)).endswith("…")
    assert len(summarize(Message(data="x" * 500))) < 80


def test_sse_events_are_recorded_as_they_came() -> None:
    r = Recorder(None)
    r.event_in(ServerSentEvent(type="tick", data="42", id="7"), now=2.0)
    assert r.frames()[0].summary == "tick id=7 42"


def test_a_limit_below_one_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        Recorder(None, 0)


def test_the_view_of_an_engine_lists_pending_acks_queue_and_channels() -> None:
    engine = WebSocketEngine(heartbeat=None)
    r = Recorder(engine.protocol)
    engine.connect(0.0)
    engine.send_with_ack("x", 0.0, handle=object())
    engine.subscribe("room", object(), 0.0)
    view = describe_websocket(engine, r, now=3.0, client="WebSocketClient")
    assert view.state == "connecting"
    assert len(view.pending) == 1
    assert view.pending[0].age is None  # queued, never on the wire
    assert len(view.queue) >= 1
    assert [c.channel for c in view.channels] == ["room"]
