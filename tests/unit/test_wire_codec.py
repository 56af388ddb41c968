"""The one codec: every frame of docs/protocol.md is written and read back the same, in both
directions; a client frame that breaks the grammar is refused with the error the protocol names."""

from __future__ import annotations

import ast
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrt.errors import EncodeError
from pyrt.wire import codec
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    ClientFrame,
    ErrorFrame,
    HistoryRequest,
    Member,
    Message,
    Ping,
    Pong,
    PresenceDiff,
    PresenceJoin,
    PresenceLeave,
    PresenceRequest,
    Publication,
    Publish,
    RawJSON,
    Refresh,
    ServerFrame,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Welcome,
)
from pyrt.wire.ingress import IngressError
from pyrt.wire.limits import ServerLimits

CLIENT_FRAMES: list[ClientFrame] = [
    Ping(3),
    Ping(),
    Pong("hold-2"),
    Message({"a": [1, 2]}),
    Message("hi", "k3f-17"),
    Subscribe("news"),
    Subscribe("news", "12-3", presence=True),
    Unsubscribe("news"),
    Publish("news", {"n": 1}, "k3f-18"),
    Publish("news", None, "k3f-19", "tick"),
    Publish("news", 1),
    HistoryRequest("k3f-20", "news"),
    HistoryRequest("k3f-21", "news", limit=50, since="0", reverse=True),
    PresenceRequest("k3f-22", "room"),
    PresenceJoin("room", {"name": "alice"}, "tab-1", "k3f-23"),
    PresenceJoin("room"),
    PresenceLeave("room", "tab-1", "k3f-24"),
    Refresh("k3f-25", "a.b.c"),
]

ALICE = Member("room", "c0ffee", "alice", {"name": "Alice"})
BOB = Member("room", "beef", None, None)
SERVER_FRAMES: list[ServerFrame] = [
    Welcome("s1", "pyrt", 25.0, ServerLimits(rate=200.0, burst=400), 3600.0),
    Welcome("s2", "pyrt", None, None, None),
    Ping(1700000000000),
    Pong(3),
    Message({"echo": True}),
    Ack("k-1", True, {"offset": "1-1"}),
    Ack("k-2", True, None),
    Ack("k-3", False, None, "internal error"),
    Ack("k-4", False, None, "temporarily unavailable, retry", "unavailable", 1.0),
    Ack("k-5", True, duplicate=True),
    Subscribed("news", "12-3", True),
    Subscribed("room", "0", False, ([ALICE, BOB], "5-0")),
    Unsubscribed("news"),
    Publication("news", {"headline": "pyrt"}, "12-4", "message"),
    PresenceDiff("room", "6-0", [BOB], [ALICE]),
    ErrorFrame("rate_limited", "slow down", "k-6", 0.5, None),
    ErrorFrame("forbidden", "no", None, None, "secret"),
]


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=repr)
def test_a_client_frame_reads_back_as_itself_on_the_server(frame: ClientFrame) -> None:
    text = codec.encode(frame)
    assert "\n" not in text
    back = codec.decode_client_frame(text)
    expected = frame
    if isinstance(frame, Publish) and frame.event is None:
        expected = Publish(frame.channel, frame.data, frame.id, "message")  # the default, named
    assert back == expected


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=repr)
def test_a_server_frame_reads_back_as_itself_on_the_client(frame: ServerFrame) -> None:
    text = codec.encode(frame)
    assert "\n" not in text
    assert codec.decode_server_frame(text) == frame


def test_every_frame_type_has_an_encoder_and_shows_up_in_the_tests() -> None:
    client = set(typing.get_args(ClientFrame))
    server = {typing.get_origin(t) or t for t in typing.get_args(ServerFrame)}
    assert client | server == set(codec._ENCODERS)
    assert {type(f) for f in CLIENT_FRAMES} == client
    assert {type(f) for f in SERVER_FRAMES} == server


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        (Ping(3), '{"type":"ping","t":3}'),
        (Message({"a": 1}, "k-1"), '{"type":"message","id":"k-1","data":{"a":1}}'),
        (Subscribe("c", None), '{"type":"subscribe","channel":"c","since":null}'),
        (Publish("c", "é", "k-2"), '{"type":"publish","id":"k-2","channel":"c","data":"é"}'),
        (Ack("k-1", True, {"offset": "1-1"}), '{"type":"ack","id":"k-1","ok":true,"data":{"offset":"1-1"}}'),
        (Ack("k-1", False, error="no"), '{"type":"ack","id":"k-1","ok":false,"error":"no"}'),
        (Ack("k-1", True, duplicate=True), '{"type":"ack","id":"k-1","ok":true,"duplicate":true}'),
        (Unsubscribed("c"), '{"type":"unsubscribed","channel":"c"}'),
        (
            Publication("c", RawJSON('{"n":1}'), "1-2"),
            '{"type":"publication","channel":"c","offset":"1-2","event":"message","data":{"n":1}}',
        ),
    ],
)
def test_frames_are_compact_json_as_the_protocol_page_writes_them(frame: Any, text: str) -> None:
    assert codec.encode(frame) == text


def test_raw_json_goes_in_as_it_is_but_on_one_line() -> None:
    member = RawJSON('{"client":"x",\n"user":null,"info":1}')
    text = codec.encode(Subscribed("room", "0", True, ([member], "1-0")))
    assert "\n" not in text
    assert json.loads(text)["presence"] == {
        "members": [{"client": "x", "user": None, "info": 1}],
        "version": "1-0",
    }
    data = codec.encode(PresenceDiff("room", "2-0", [member], []))
    assert json.loads(data)["joins"][0]["client"] == "x"


def test_values_that_cannot_be_json_raise_encode_error_naming_the_type() -> None:
    with pytest.raises(EncodeError, match="cannot send a set as JSON"):
        codec.encode(Message({1, 2}))
    with pytest.raises(EncodeError, match="float"):
        codec.encode(Publish("c", float("nan"), "k"))
    with pytest.raises(TypeError, match="not a pyrt frame"):
        codec.encode("text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "code", "frame_id", "channel"),
    [
        ("not json", "bad_json", None, None),
        ('{"type":"message","data":NaN}', "bad_json", None, None),
        ('{"type":"message","id":"k-1","data":"\\ud800"}', "bad_frame", "k-1", None),
        ("[1]", "bad_frame", None, None),
        ('{"type":"dance","id":"k-2"}', "unknown_type", "k-2", None),
        ('{"data":1}', "unknown_type", None, None),
        ('{"type":"message","id":"","data":1}', "bad_frame", None, None),
        ('{"type":"message","id":7,"data":1}', "bad_frame", None, None),
        ('{"type":"subscribe","channel":"a b"}', "bad_frame", None, None),
        ('{"type":"subscribe","channel":"c","since":"yesterday"}', "bad_frame", None, "c"),
        ('{"type":"subscribe","channel":"c","presence":"yes"}', "bad_frame", None, "c"),
        ('{"type":"unsubscribe"}', "bad_frame", None, None),
        ('{"type":"publish","id":"k-3","channel":"","data":1}', "bad_frame", "k-3", None),
        ('{"type":"publish","id":"k-4","channel":"c","event":"a b","data":1}', "bad_frame", "k-4", None),
        ('{"type":"history","channel":"c"}', "bad_frame", None, None),
        ('{"type":"history","id":"k-5","channel":"c","limit":0}', "bad_frame", "k-5", None),
        ('{"type":"history","id":"k-6","channel":"c","limit":true}', "bad_frame", "k-6", None),
        ('{"type":"history","id":"k-7","channel":"c","reverse":1}', "bad_frame", "k-7", None),
        ('{"type":"history","id":"k-8","channel":"c","since":5}', "bad_frame", "k-8", None),
        ('{"type":"presence","id":"k-9","channel":"!"}', "bad_frame", "k-9", None),
        (
            '{"type":"presence_join","id":"k-10","channel":"r","key":"' + "k" * 65 + '"}',
            "bad_frame",
            "k-10",
            None,
        ),
        ('{"type":"presence_leave","id":"k-11","channel":"r","key":3}', "bad_frame", "k-11", None),
        ('{"type":"refresh","id":"k-12"}', "bad_frame", "k-12", None),
    ],
)
def test_a_client_frame_that_breaks_the_grammar_is_refused_naming_what_it_can(
    text: str, code: str, frame_id: str | None, channel: str | None
) -> None:
    with pytest.raises(IngressError) as refused:
        codec.decode_client_frame(text)
    assert (refused.value.code, refused.value.id, refused.value.channel) == (code, frame_id, channel)
    assert str(refused.value)


def test_an_id_that_cannot_be_sent_back_is_not_named() -> None:
    with pytest.raises(IngressError) as refused:
        codec.decode_client_frame('{"type":"message","id":"\\udc00","data":1}')
    assert refused.value.code == "bad_frame"
    assert refused.value.id is None


def test_a_server_frame_that_is_not_pyrt_is_a_bad_frame_never_an_exception() -> None:
    assert codec.decode_server_frame(b"\x00") == BadFrame("binary frame on a JSON protocol", b"\x00")
    assert codec.decode_server_frame("{") == BadFrame("invalid JSON", "{")
    assert codec.decode_server_frame("[]") == BadFrame("not a JSON object", "[]")
    assert codec.decode_server_frame('{"type":"x"}') == BadFrame("unknown frame type 'x'", '{"type":"x"}')
    broken = '{"type":"presence_diff","channel":"r","version":"1","joins":7,"leaves":[]}'
    assert type(codec.decode_server_frame(broken)) is BadFrame


def test_a_server_frame_with_odd_durations_reads_them_as_absent() -> None:
    ack = codec.decode_server_frame('{"type":"ack","id":"k","ok":false,"retry_after":-1,"code":7}')
    assert ack == Ack("k", False, code=None, retry_after=None)
    huge = codec.decode_server_frame('{"type":"error","code":"rate_limited","message":"","retry_after":1e9}')
    assert isinstance(huge, ErrorFrame)
    assert huge.retry_after == 3600.0


def test_a_batch_is_split_at_line_breaks_and_a_pretty_printed_frame_is_not_a_batch() -> None:
    texts = [codec.encode(Pong(1)), codec.encode(Message(2))]
    batch = codec.encode_batch(texts)
    assert codec.decode_batch(batch) == [Pong(1), Message(2)]
    assert codec.split_batch(batch) == texts
    assert codec.decode_batch(texts[0]) is None
    pretty = '{\n  "type": "pong",\n  "t": 1\n}'
    assert codec.decode_batch(pretty) is None
    assert codec.split_batch(pretty) is None
    assert codec.decode_server_frame(pretty) == Pong(1)


def test_peek_reads_type_id_and_channel_cheaply_even_from_a_huge_frame() -> None:
    assert codec.peek('{"type":"subscribe","channel":"news"}') == ("subscribe", None, "news")
    assert codec.peek('{"type":"publish","id":"k-1","channel":"c","data":1}') == ("publish", "k-1", None)
    assert codec.peek("[1,2]") == (None, None, None)
    huge = '{"type":"publish", "id":"k-2","channel":"c","data":"' + "x" * 100_000 + '"}'
    assert codec.peek(huge) == ("publish", "k-2", None)
    assert codec.peek('{"data":"' + "x" * 100_000 + '"}') == (None, None, None)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_clean = _json_values.filter(lambda v: "\ud800" not in json.dumps(v) and "\\ud" not in json.dumps(v))


@given(_clean, st.sampled_from(["k-1", None]))
def test_any_json_data_round_trips_in_messages_and_publications(data: Any, frame_id: str | None) -> None:
    sent = codec.encode(Message(data, frame_id))
    assert "\n" not in sent
    assert codec.decode_client_frame(sent) == Message(data, frame_id)
    publication = Publication("c", data, "1-1")
    assert codec.decode_server_frame(codec.encode(publication)) == publication


# ------------------------------------------------------------------- one codec owns the format

FRAME_TYPES = {
    "ping", "pong", "message", "subscribe", "unsubscribe", "publish", "history", "presence",
    "presence_join", "presence_leave", "refresh", "welcome", "ack", "subscribed", "unsubscribed",
    "publication", "presence_diff", "error",
}  # fmt: skip
PACKAGE = Path(codec.__file__).resolve().parents[1]
OWNERS = {PACKAGE / "wire" / "codec.py"}


def frames_spelled(source: str) -> list[str]:
    """Where ``source`` writes a pyrt frame itself: a dict literal whose ``"type"`` is a frame
    type, or a string that starts a frame's JSON (``'{"type":"ack"'``). Docstrings do not count."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "type"
                    and isinstance(value, ast.Constant)
                    and value.value in FRAME_TYPES
                ):
                    found.append(f"line {node.lineno}: {{'type': {value.value!r}}}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            match = re.search(r'\{\s*"type"\s*:\s*"([a-z_]+)"', node.value)
            if match and match.group(1) in FRAME_TYPES:
                found.append(f"line {node.lineno}: {node.value[:30]!r}")
    return found


def test_no_module_outside_the_codec_writes_a_frame() -> None:
    spelled = {
        str(path.relative_to(PACKAGE)): where
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in OWNERS and (where := frames_spelled(path.read_text(encoding="utf-8")))
    }
    assert spelled == {}


def test_the_frame_scan_sees_dicts_and_spliced_strings_but_not_docstrings() -> None:
    source = (
        '"""{"type":"ack"} in a docstring is fine."""\n'
        'a = {"type": "ack", "id": 1}\n'
        'b = \'{"type":"pong","t":\' + str(1) + \'}\'\n'
        'c = {"type": "websocket.send"}\n'
    )
    assert [line.split(":")[0] for line in frames_spelled(source)] == ["line 2", "line 3"]


# ----------------------------------------------------------------------------------- traceparent

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_message_and_publish_frames_carry_a_traceparent_only_when_given() -> None:
    assert "traceparent" not in codec.encode(Message({"a": 1}, "m-1"))
    assert "traceparent" not in codec.encode(Publish("chat", "hi", "p-1"))
    assert codec.encode_message("hi", "m-1") == '{"type":"message","id":"m-1","data":"hi"}'
    message = codec.encode(Message({"a": 1}, "m-1", TRACEPARENT))
    assert json.loads(message) == {
        "type": "message",
        "id": "m-1",
        "traceparent": TRACEPARENT,
        "data": {"a": 1},
    }
    assert json.loads(codec.encode_message(1, None, TRACEPARENT)) == {
        "type": "message",
        "traceparent": TRACEPARENT,
        "data": 1,
    }
    publish = codec.encode(Publish("chat", "hi", "p-1", "note", TRACEPARENT))
    assert json.loads(publish)["traceparent"] == TRACEPARENT


def test_the_server_reads_a_traceparent_and_frames_without_one_as_before() -> None:
    assert codec.decode_client_frame(codec.encode(Message("hi", "m-1", TRACEPARENT))) == Message(
        "hi", "m-1", TRACEPARENT
    )
    assert codec.decode_client_frame(
        codec.encode(Publish("chat", "hi", "p-1", None, TRACEPARENT))
    ) == Publish("chat", "hi", "p-1", "message", TRACEPARENT)
    assert codec.decode_client_frame('{"type":"message","data":1}') == Message(1)
    assert codec.decode_client_frame('{"type":"publish","channel":"c","data":1}') == Publish(
        "c", 1, None, "message"
    )
    # null is the same as no field
    assert codec.decode_client_frame('{"type":"message","data":1,"traceparent":null}') == Message(1)


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        1,
        True,
        ["00"],
        TRACEPARENT.upper(),
        TRACEPARENT + "-00",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        TRACEPARENT.replace("00-", "ff-", 1),
    ],
)
@pytest.mark.parametrize("kind", ["message", "publish"])
def test_a_bad_traceparent_is_a_bad_frame_naming_the_id(kind: str, value: Any) -> None:
    frame = {"type": kind, "id": "x-1", "channel": "chat", "data": 1, "traceparent": value}
    with pytest.raises(IngressError) as raised:
        codec.decode_client_frame(json.dumps(frame))
    assert raised.value.code == "bad_frame"
    assert raised.value.id == "x-1"
    assert "traceparent" in str(raised.value)


def test_a_client_reads_a_server_message_with_a_traceparent_as_a_message() -> None:
    assert codec.decode_server_frame(
        f'{{"type":"message","data":1,"traceparent":"{TRACEPARENT}"}}'
    ) == Message(1)
