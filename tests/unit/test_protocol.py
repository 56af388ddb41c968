"""Protocols: frames follow docs/protocol.md, decode into events, and bad data is refused early."""

from __future__ import annotations

import json

import pytest

from pyrt.errors import EncodeError, UnsupportedByProtocol
from pyrt.wire import binary
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    ErrorFrame,
    Message,
    Ping,
    Pong,
    Publication,
    Publish,
    Subscribed,
    Unsubscribed,
    Welcome,
)
from pyrt.wire.limits import ServerLimits
from pyrt.wire.protocols import (
    JsonAckProtocol,
    PyrtBinaryProtocol,
    PyrtProtocol,
    RawProtocol,
    WireProtocol,
    get_protocol,
    with_traceparent,
)

pyrt = PyrtProtocol()


def test_pyrt_messages_are_json_objects_with_a_type() -> None:
    assert json.loads(pyrt.encode({"a": 1})) == {"type": "message", "data": {"a": 1}}
    assert json.loads(pyrt.encode("hi")) == {"type": "message", "data": "hi"}
    assert json.loads(pyrt.encode_acked("k-1", [1])) == {"type": "message", "id": "k-1", "data": [1]}


def test_pyrt_control_frames_match_the_contract() -> None:
    assert json.loads(pyrt.encode_ping(3)) == {"type": "ping", "t": 3}
    assert json.loads(pyrt.encode_pong("x")) == {"type": "pong", "t": "x"}
    assert json.loads(pyrt.encode_subscribe("c", "1-2")) == {
        "type": "subscribe",
        "channel": "c",
        "since": "1-2",
    }
    assert json.loads(pyrt.encode_unsubscribe("c")) == {"type": "unsubscribe", "channel": "c"}
    assert json.loads(pyrt.encode_publish("k-2", "c", {"x": 1}, None)) == {
        "type": "publish",
        "id": "k-2",
        "channel": "c",
        "data": {"x": 1},
    }
    assert json.loads(pyrt.encode_publish("k-3", "c", 1, "tick"))["event"] == "tick"


def test_pyrt_json_refuses_binary_naming_the_binary_binding() -> None:
    with pytest.raises(EncodeError, match=r"only on the binary binding.*pyrt.v1.msgpack"):
        pyrt.encode(b"\x00")
    with pytest.raises(EncodeError, match="binary binding"):
        pyrt.encode_acked("k", bytearray(b"x"))
    with pytest.raises(EncodeError, match="binary binding"):
        pyrt.encode_publish("k", "c", {"deep": [b"x"]}, None)


def test_data_that_is_not_json_is_refused_with_its_type() -> None:
    with pytest.raises(EncodeError, match="cannot send a set as JSON"):
        pyrt.encode({1, 2})
    with pytest.raises(EncodeError, match="float"):
        pyrt.encode(float("nan"))


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        ('{"type":"message","data":{"a":1}}', Message({"a": 1})),
        ('{"type":"ack","id":"k-1","ok":true,"data":5}', Ack("k-1", True, 5)),
        ('{"type":"ack","id":"k-1","ok":false,"error":"no"}', Ack("k-1", False, None, "no")),
        ('{"type":"pong","t":4}', Pong(4)),
        ('{"type":"ping","t":"s"}', Ping("s")),
        (
            '{"type":"subscribed","channel":"c","offset":"1-2","recovered":false}',
            Subscribed("c", "1-2", False),
        ),
        ('{"type":"unsubscribed","channel":"c"}', Unsubscribed("c")),
        ('{"type":"welcome","session":"s1","server":"n","heartbeat":25}', Welcome("s1", "n", 25)),
        (
            '{"type":"welcome","session":"s1","limits":{"rate":200,"burst":400,"window":1000}}',
            Welcome("s1", None, None, ServerLimits(rate=200.0, burst=400, window=1000)),
        ),
        ('{"type":"error","code":"bad_json","message":"m","id":"k-9"}', ErrorFrame("bad_json", "m", "k-9")),
        (
            '{"type":"error","code":"rate_limited","message":"m","id":"k-9","retry_after":0.5}',
            ErrorFrame("rate_limited", "m", "k-9", 0.5),
        ),
        (
            '{"type":"error","code":"rate_limited","message":"m","channel":"news","retry_after":"soon"}',
            ErrorFrame("rate_limited", "m", None, None, "news"),
        ),
        (
            '{"type":"ack","id":"k-2","ok":false,"error":"down","code":"unavailable","retry_after":1}',
            Ack("k-2", False, None, "down", "unavailable", 1.0),
        ),
        ('{"type":"ack","id":"k-3","ok":true,"data":1,"code":"x"}', Ack("k-3", True, 1)),
        (
            '{"type":"publication","channel":"c","offset":"1-3","event":"tick","data":[1]}',
            Publication("c", [1], "1-3", "tick"),
        ),
    ],
)
def test_pyrt_frames_decode_into_events(frame: str, event: object) -> None:
    assert pyrt.decode(frame) == event


def test_unknown_fields_are_ignored() -> None:
    assert pyrt.decode('{"type":"message","data":1,"future":"field"}') == Message(1)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [("not json", "invalid JSON"), ("[1]", "not a JSON object"), ('{"type":"nope"}', "unknown frame type")],
)
def test_unreadable_pyrt_frames_become_bad_frames(frame: str, reason: str) -> None:
    event = pyrt.decode(frame)
    assert isinstance(event, BadFrame)
    assert reason in event.reason


def test_raw_frames_go_out_as_they_are() -> None:
    raw = RawProtocol()
    assert raw.encode("text") == "text"
    assert raw.encode(b"\x01") == b"\x01"
    assert raw.encode(bytearray(b"\x02")) == b"\x02"
    assert raw.encode(memoryview(b"\x03")) == b"\x03"
    assert raw.encode({"a": 1}) == '{"a":1}'
    assert raw.decode("whatever") == Message("whatever")


def test_raw_mode_has_no_acks_and_no_channels() -> None:
    raw = RawProtocol()
    with pytest.raises(UnsupportedByProtocol, match="no acknowledgements"):
        raw.encode_acked(1, "x")
    with pytest.raises(UnsupportedByProtocol, match="no channels"):
        raw.encode_subscribe("c", None)


def test_raw_mode_heartbeat_uses_plain_ping_and_pong_texts() -> None:
    raw = RawProtocol()
    matcher = raw.pong_matcher()
    assert raw.encode_ping(1) == "ping"
    assert matcher is not None
    assert matcher("pong")
    assert not matcher("ping")
    assert PyrtProtocol().pong_matcher() is None


def test_the_common_ack_shape_round_trips() -> None:
    proto = JsonAckProtocol()
    assert json.loads(proto.encode_acked(7, {"x": 1})) == {"id": 7, "data": {"x": 1}}
    answer = '{"type":"ack","messageId":7,"success":false,"error":"denied"}'
    assert proto.decode(answer) == Ack(7, False, None, "denied")
    assert proto.decode('{"type":"ack","messageId":8,"success":true}') == Ack(8, True)
    assert proto.decode("plain text") == Message("plain text")
    assert proto.decode('{"messageId": oops') == Message('{"messageId": oops')


def test_protocols_are_chosen_by_name() -> None:
    assert isinstance(get_protocol("pyrt"), PyrtProtocol)
    assert isinstance(get_protocol("raw"), RawProtocol)
    assert isinstance(get_protocol("json-ack"), JsonAckProtocol)
    custom = RawProtocol()
    assert get_protocol(custom) is custom
    with pytest.raises(ValueError, match="unknown protocol 'mqtt'"):
        get_protocol("mqtt")


def test_the_pyrt_protocol_asks_for_its_subprotocol() -> None:
    assert PyrtProtocol.subprotocol == "pyrt.v1"
    assert WireProtocol.subprotocol is None


def test_pyrt_offers_batched_frames_first_and_plain_frames_for_servers_that_do_not_know_them() -> None:
    assert PyrtProtocol.subprotocols == ("pyrt.v1.batch", "pyrt.v1")
    assert PyrtProtocol.subprotocol == "pyrt.v1"
    assert RawProtocol.subprotocols == ()


def test_a_batch_decodes_into_its_frames_in_order() -> None:
    batch = '{"type":"pong","t":1}\n{"type":"message","data":{"a":"x\\ny"}}\n{"type":"what"}'
    events = pyrt.decode_batch(batch)
    assert events is not None
    assert events[:2] == [Pong(1), Message({"a": "x\ny"})]
    assert isinstance(events[2], BadFrame)  # an unknown frame in a batch is reported, alone


def test_one_frame_with_line_breaks_is_not_a_batch() -> None:
    pretty = json.dumps({"type": "message", "data": [1, 2]}, indent=2)
    assert pyrt.decode_batch(pretty) is None
    assert pyrt.decode(pretty) == Message([1, 2])
    assert pyrt.decode_batch('{"type":"pong"}\n') is None  # a trailing line break: one frame
    assert RawProtocol().decode_batch("a\nb") is None  # only protocols that batch split


# ------------------------------------------------------------------------- the binary binding


def test_the_default_pyrt_protocol_offers_the_binary_binding_first_when_msgpack_is_there() -> None:
    protocol = get_protocol("pyrt")
    assert isinstance(protocol, PyrtBinaryProtocol)
    assert protocol.subprotocols == ("pyrt.v1.msgpack", "pyrt.v1.batch", "pyrt.v1")
    assert get_protocol("pyrt-json").subprotocols == ("pyrt.v1.batch", "pyrt.v1")


def test_frames_are_messagepack_only_when_their_data_needs_it_and_json_servers_refuse_it_early() -> None:
    protocol = PyrtBinaryProtocol()
    assert isinstance(protocol.encode({"x": 1}), str)  # before any welcome: JSON, every server reads it
    assert isinstance(protocol.encode(b"\x00"), bytes)  # ...unless the data needs the binary binding
    protocol.decode(binary.encode(Welcome("s", "srv", None, None, None, None)))
    assert protocol.binary is True
    assert isinstance(protocol.encode_subscribe("c", None), str)  # read on both bindings
    assert isinstance(protocol.encode({"x": 1}), str)
    assert binary.decode_client_frame(protocol.encode_publish("k-1", "c", b"\x01", None)) == Publish(
        "c", binary.tag(b"\x01"), "k-1", "message"
    )
    protocol.decode('{"type":"welcome","session":"s2"}')
    assert protocol.binary is False
    assert isinstance(protocol.encode_ping(1), str)
    with pytest.raises(EncodeError, match="this server chose the JSON binding"):
        protocol.encode_publish("k-2", "c", {"raw": b"\x01"}, None)


def test_a_binary_message_is_read_once_whether_it_holds_one_frame_or_several() -> None:
    protocol = PyrtBinaryProtocol()
    one = binary.encode(Pong(1))
    assert protocol.decode_batch(one) == [Pong(1)]
    assert protocol.decode_batch(one + binary.encode(Message(b"m"))) == [Pong(1), Message(b"m")]
    assert protocol.decode(one) == Pong(1)


def test_the_encoder_and_decoder_hooks_carry_what_neither_binding_knows() -> None:
    import dataclasses
    import datetime

    @dataclasses.dataclass
    class Point:
        x: int
        when: datetime.date

    def encoder(value: object) -> object:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        if isinstance(value, datetime.date):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    protocol = PyrtBinaryProtocol(encoder=encoder, decoder=lambda data: ("decoded", data))
    point = Point(1, datetime.date(2026, 12, 8))
    assert json.loads(protocol.encode(point)) == {"type": "message", "data": {"x": 1, "when": "2026-12-08"}}
    frame = protocol.encode([point, b"raw"])  # bytes: MessagePack, the hook still applies
    assert binary.decode_server_frame(frame) == Message([{"x": 1, "when": "2026-12-08"}, b"raw"])
    assert protocol.decode(binary.encode(Message([1]))) == Message(("decoded", [1]))
    assert protocol.decode('{"type":"publication","channel":"c","data":2}') == Publication(
        "c", ("decoded", 2)
    )


def test_a_client_loads_the_binary_binding_only_when_it_speaks_it() -> None:
    import subprocess
    import sys

    from pyrt.wire.protocols import BINARY_SUBPROTOCOL

    assert binary.SUBPROTOCOL == BINARY_SUBPROTOCOL
    import os
    from pathlib import Path

    code = (
        "import sys; from pyrt import WebSocketClient; WebSocketClient('ws://127.0.0.1:1/ws'); "
        "lazy = ('pyrt.wire.binary', 'pyrt.wire.ndarray', 'msgpack', 'numpy'); "
        "print(sorted(m for m in lazy if m in sys.modules))"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env
    ).stdout
    assert out.strip() == "[]"


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("make", [PyrtProtocol, PyrtBinaryProtocol])
def test_a_traced_protocol_puts_the_sources_traceparent_on_messages_and_publishes_only(make: type) -> None:
    plain = make()
    traced = with_traceparent(plain, lambda: TRACEPARENT)
    assert plain.traceparent is None  # a copy: the original sends none
    assert "traceparent" not in plain.encode_acked("k-1", 1)
    assert json.loads(traced.encode("hi"))["traceparent"] == TRACEPARENT
    assert json.loads(traced.encode_acked("k-1", 1))["traceparent"] == TRACEPARENT
    assert json.loads(traced.encode_publish("k-2", "chat", 1, None))["traceparent"] == TRACEPARENT
    for frame in (
        traced.encode_subscribe("chat", None),
        traced.encode_ping(1),
        traced.encode_refresh("k", "t"),
    ):
        assert "traceparent" not in frame
    if make is PyrtBinaryProtocol:  # bytes go as MessagePack, with the field
        assert binary.decode_client_frame(traced.encode_acked("k-3", b"\x00")).traceparent == TRACEPARENT


def test_a_source_outside_a_span_or_with_a_bad_value_sends_no_traceparent() -> None:
    values: list[str | None] = [None, "not-a-traceparent", TRACEPARENT.upper()]
    traced = with_traceparent(PyrtProtocol(), values.pop)
    for _ in range(3):
        assert "traceparent" not in traced.encode("hi")


def test_only_the_pyrt_protocols_have_a_traceparent() -> None:
    for protocol in (RawProtocol(), JsonAckProtocol()):
        with pytest.raises(ValueError, match="traceparent needs the pyrt protocol"):
            with_traceparent(protocol, lambda: TRACEPARENT)
