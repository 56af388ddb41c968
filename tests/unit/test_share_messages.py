"""The messages of a share group: text on the channel, frames text or binary, foreign traffic ignored."""

from __future__ import annotations

from pyrt.share.messages import decode, encode, frame_fields, frame_of


def test_a_message_round_trips_as_text() -> None:
    text = encode("open", "p1", to="p2", l="p1.1", x={"last": "1-2"})
    assert isinstance(text, str)
    assert decode(text) == {"t": "open", "f": "p1", "to": "p2", "l": "p1.1", "x": {"last": "1-2"}}


def test_frames_travel_as_text_or_base64() -> None:
    for frame in ('{"type":"message"}', b"\x00\xff"):
        assert frame_of({"t": "frame", **frame_fields(frame)}) == frame
    assert frame_of({"t": "frame"}) is None
    assert frame_of({"t": "frame", "b": "!!"}) is None


def test_other_traffic_on_the_channel_is_not_a_message() -> None:
    others = (None, 5, "hello", '{"x":1}', '{"t":1,"f":"p"}', '{"t":"hello"}', '{"t":"x","f":', '{"t":"x"]')
    for text in others:
        assert decode(text) is None
