"""The messages of a share group: text on the channel, a link's items carried as they are, foreign
traffic ignored."""

from __future__ import annotations

import json

from pyrt.share.messages import decode, encode, encode_link
from pyrt.share.relay import KEEP_ALIVE, EventTypes
from pyrt.wire.sse import ServerSentEvent


def test_a_message_round_trips_as_text() -> None:
    text = encode("open", "p1", to="p2", l="p1.1", x={"last": "1-2"})
    assert isinstance(text, str)
    assert decode(text) == {"t": "open", "f": "p1", "to": "p2", "l": "p1.1", "x": {"last": "1-2"}}


def test_every_kind_of_link_item_round_trips() -> None:
    items = [
        '{"type":"publish","id":"a-1","channel":"c","data":"line\\nbreak"}',
        "raw text\nwith a line break",
        "",
        b"\x00\xff\n",
        ServerSentEvent(type="tick", data="one\ntwo\n", id="1-2"),
        ServerSentEvent(),
        KEEP_ALIVE,
        EventTypes(("a", "b")),
        EventTypes(()),
    ]
    for item in items:
        message = decode(encode_link("item", "p1", "p2", "p1.3", item))
        assert message == {"t": "item", "f": "p1", "to": "p2", "l": "p1.3", "i": item}
    opened = decode(encode_link("opened", "p2", "p1", "p1.3", None))
    assert opened is not None
    assert (opened["t"], opened["i"]) == ("opened", None)


def test_a_frame_travels_as_it_is_not_escaped_into_json() -> None:
    frame = json.dumps({"type": "publish", "id": "a-1", "channel": "c", "data": {"text": 'say "hi"'}})
    text = encode_link("item", "p1", "p2", "p1.1", frame)
    assert text.endswith("\n" + frame)  # the frame's own text, after a few header lines
    assert '\\"' not in text.replace(frame, "")


def test_other_traffic_on_the_channel_is_not_a_message() -> None:
    others = (None, 5, "hello", '{"x":1}', '{"t":1,"f":"p"}', '{"t":"hello"}', '{"t":"x","f":', '{"t":"x"]')
    links = ("\x1e", "\x1eid\np1\np2", "\x1exd\np1\np2\nl\nx", "\x1eiz\np1\np2\nl\nx", "\x1eib\np\nq\nl\n!!")
    for text in (*others, *links, "\x1eie\np\nq\nl\nno-id-nor-data"):
        assert decode(text) is None
