"""The binary binding (pyrt.wire.binary): every frame round-trips, bytes and arrays travel as
they are, the tagged JSON form goes both ways, and the strict decoder refuses what the server must
not store with ``bad_frame`` only (Hypothesis fuzzes it with random bytes and mutated frames)."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.errors import EncodeError
from pyrt.wire import binary, codec
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    ClientFrame,
    ErrorFrame,
    HistoryPage,
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
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Welcome,
)
from pyrt.wire.ingress import IngressError
from pyrt.wire.limits import ServerLimits
from pyrt.wire.ndarray import NDArray

CLIENT_FRAMES: list[ClientFrame] = [
    Ping(5),
    Ping(None),
    Pong(3),
    Message({"x": [1, 2.5, None, True]}, "k-1"),
    Message(b"\x00bytes"),
    Subscribe("news", "1-4", True),
    Subscribe("news", None),
    Unsubscribe("news"),
    Publish("news", {"b": b"\xff"}, "k-2", "tick"),
    HistoryRequest("k-3", "news", 10, "1-1", True),
    PresenceRequest("k-4", "news"),
    PresenceJoin("news", {"name": "a"}, "k", "k-5"),
    PresenceLeave("news", "k", "k-6"),
    Refresh("k-7", "token"),
]


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda f: type(f).__name__)
def test_every_client_frame_round_trips_with_its_data_tagged_for_the_server(frame: ClientFrame) -> None:
    read = binary.decode_client_frame(binary.encode(frame))
    data = getattr(frame, "data", None)
    if isinstance(data, bytes) or (isinstance(data, dict) and "b" in data):
        assert binary.untag(read.data) == data  # type: ignore[union-attr]
        assert read == type(frame)(**{**_fields(frame), "data": binary.tag(data)})
    else:
        assert read == frame


def _fields(frame: Any) -> dict[str, Any]:
    return {name: getattr(frame, name) for name in frame.__dataclass_fields__}


SERVER_FRAMES = [
    Welcome("s1", "srv", 25.0, ServerLimits(rate=10.0, burst=20.0), 60.0, "key"),
    Ack("k-1", True, {"offset": "1-1"}),
    Ack("k-2", False, None, "refused", "rate_limited", 1.5),
    Ack("k-3", True, duplicate=True),
    Publication("news", b"\x00\x01", "1-2", "tick"),
    Subscribed("news", "1-2", False, ([Member("news", "c1", "ann", {"a": 1})], "3-1")),
    Unsubscribed("news"),
    PresenceDiff("news", "3-2", [Member("news", "c2", None, None)], []),
    ErrorFrame("bad_frame", "no", "k-4", None, "news"),
    Message([1, "two"]),
    Ping(9),
    Pong(None),
]


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: type(f).__name__)
def test_every_server_frame_round_trips(frame: Any) -> None:
    assert binary.decode_server_frame(binary.encode(frame)) == frame


def test_a_frame_made_by_the_json_codec_transcodes_to_the_same_frame() -> None:
    for frame in SERVER_FRAMES:
        if isinstance(frame, Publication) and isinstance(frame.data, bytes):
            continue
        assert binary.decode_server_frame(binary.transcode(codec.encode(frame))) == frame


def test_a_history_page_kept_as_tagged_json_arrives_with_bytes_and_arrays() -> None:
    stored = codec.json_text(
        binary.json_form({"raw": b"xyz", "a": NDArray("<i2", (2,), b"\x01\x00\x02\x00")})
    )
    page = HistoryPage([Publication("c", RawJSON(stored), "1-1")], "1-1", True, False)
    ack = binary.decode_server_frame(
        binary.transcode(codec.encode(Ack("k-1", True, RawJSON(codec.encode_history_page(page)))))
    )
    assert isinstance(ack, Ack)
    data = ack.data["publications"][0]["data"]
    assert data["raw"] == b"xyz"
    assert np.array_equal(data["a"], np.array([1, 2], dtype="<i2"))


def test_a_publication_stored_as_json_text_fans_out_with_its_bytes() -> None:
    stored = codec.json_text(binary.tag({"k": b"\x00\x01"}))
    frame = binary.decode_server_frame(binary.encode_publication("c", "1-1", "message", stored))
    assert frame == Publication("c", {"k": b"\x00\x01"}, "1-1")


def test_several_frames_in_one_message_are_a_batch() -> None:
    one = binary.encode(Pong(1))
    assert binary.decode_batch(one) == [Pong(1)]
    assert binary.decode_batch(one + binary.encode(Pong(2)) + binary.encode(Message("m"))) == [
        Pong(1),
        Pong(2),
        Message("m"),
    ]
    events = binary.decode_batch(one + b"\xc1")
    assert events is not None
    assert events[0] == Pong(1)
    assert isinstance(events[1], BadFrame)


def test_a_client_reports_what_it_cannot_read_and_never_raises() -> None:
    assert isinstance(binary.decode_server_frame(b"\xc1"), BadFrame)
    assert isinstance(binary.decode_server_frame(msgpack.packb([1])), BadFrame)
    assert isinstance(binary.decode_server_frame(msgpack.packb({"type": "nope"})), BadFrame)
    assert binary.decode_server_frame('{"type":"pong","t":1}') == Pong(1)  # text: the JSON codec


ARRAYS = [
    np.arange(12, dtype="<f4").reshape(3, 4),
    np.arange(6, dtype=">f8").reshape(3, 2),
    np.arange(24, dtype=">i2").reshape(2, 3, 4),
    np.array([True, False]),
    np.array(3, dtype="<u4"),
    np.zeros((0, 3), dtype="<f2"),
    np.arange(4, dtype="<c8"),
    np.array(["2026-01-01", "NaT"], dtype="datetime64[D]"),
    np.array([b"ab", b"c"], dtype="S2"),
    np.array(["x", "yz"], dtype="<U2"),
    np.arange(20, dtype="<i8")[::-3],
    np.asfortranarray(np.arange(6, dtype="<i4").reshape(2, 3)),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_numpy_arrays_arrive_as_equal_arrays(array: Any) -> None:
    frame = binary.decode_server_frame(binary.encode(Publication("c", {"a": array}, "1-1")))
    got = frame.data["a"]  # type: ignore[union-attr]
    assert isinstance(got, np.ndarray)
    assert (got.dtype, got.shape) == (array.dtype, array.shape)
    assert got.tobytes() == np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_arrays_pass_through_the_server_as_tagged_json_and_back(array: Any) -> None:
    read = binary.decode_client_frame(binary.encode(Publish("c", array, "k-1", None)))
    stored = codec.json_text(read.data)  # type: ignore[union-attr]
    assert json.loads(stored)["$pyrt"] == "ndarray"
    out = binary.decode_server_frame(binary.encode_publication("c", "1-1", "message", stored))
    assert np.ascontiguousarray(array).tobytes() == out.data.tobytes()  # type: ignore[union-attr]
    assert out.data.shape == array.shape  # type: ignore[union-attr]


def test_object_and_structured_arrays_are_refused_by_name() -> None:
    with pytest.raises(EncodeError, match="object and structured"):
        binary.encode_message(np.array([1, "x"], dtype=object))
    with pytest.raises(EncodeError, match="object and structured"):
        binary.encode_message(np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]))


def test_numpy_scalars_travel_as_python_numbers() -> None:
    message = binary.decode_server_frame(
        binary.encode_message([np.int64(3), np.float32(0.5), np.bool_(True)])
    )
    assert message == Message([3, 0.5, True])


def test_values_neither_binding_carries_go_through_the_encoder_hook() -> None:
    import datetime
    import decimal

    with pytest.raises(EncodeError, match="cannot send a date"):
        binary.encode_message(datetime.date(2026, 1, 2))
    hook = lambda value: value.isoformat() if hasattr(value, "isoformat") else str(value)  # noqa: E731
    frame = binary.encode_message([datetime.date(2026, 1, 2), decimal.Decimal("1.10")], encoder=hook)
    assert binary.decode_server_frame(frame) == Message(["2026-01-02", "1.10"])


def test_only_the_exact_tagged_forms_are_read_back() -> None:
    assert binary.untag({"$pyrt": "bytes", "base64": "eHk="}) == b"xy"
    looks_like = [
        {"$pyrt": "bytes", "base64": "not base64!"},
        {"$pyrt": "bytes", "base64": "eHk=", "extra": 1},
        {"$pyrt": "ndarray", "dtype": "<f4", "shape": [3], "base64": "eHk="},  # 2 bytes, not 12
        {"$pyrt": "other", "base64": "eHk="},
    ]
    for value in looks_like:
        assert binary.untag(value) == value


# ------------------------------------------------------------------------------ strict ingress


def _publish(data: Any) -> bytes:
    return msgpack.packb({"type": "publish", "id": "k-1", "channel": "c", "data": data})


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"\xc1", "not valid MessagePack"),
        (b"\x92\x01", "not valid MessagePack"),
        (msgpack.packb([1]), "must be a MessagePack map"),
        (_publish(msgpack.ExtType(7, b"")), "ext type 7"),
        (_publish(msgpack.ExtType(1, b"\x00")), "bad array"),
        (_publish(msgpack.ExtType(1, msgpack.packb(["<f4", [3]]) + b"\x00")), "bad array"),
        (_publish(msgpack.ExtType(1, msgpack.packb(["|O", [1]]) + b"\x00" * 8)), "bad array"),
        (_publish(float("inf")), "NaN and infinities"),
        (msgpack.packb({"type": "publish", "channel": "c", "data": {b"k": 1}}), "keys must be strings"),
        (msgpack.packb({1: 2}), "not valid MessagePack"),  # strict_map_key: only str/bytes keys
        (_publish(msgpack.Timestamp(0)), "ext types other than arrays"),
        (b"\x84\xa4type\xa7publish\xa2id\xa3k-1\xa7channel\xa1c\xa4data" + b"\x91" * 100 + b"\xc0", "nested"),
        (
            b"\x84\xa4type\xa7publish\xa2id\xa3k-1\xa7channel\xa1c\xa4data" + b"\x91" * 5000 + b"\xc0",
            "not valid",
        ),
        (msgpack.packb({"type": "publish", "channel": "bad name!", "data": 1}), "channel"),
        (b"\xa5\xff\xfe\xfd\xfc\xfb", "not valid MessagePack"),  # invalid UTF-8 in a str
    ],
)
def test_the_server_refuses_bad_binary_frames_with_bad_frame(frame: bytes, why: str) -> None:
    with pytest.raises(IngressError, match=why) as raised:
        binary.decode_client_frame(frame)
    assert raised.value.code == "bad_frame"


def test_a_refused_frame_names_its_id_when_it_has_a_readable_one() -> None:
    with pytest.raises(IngressError) as raised:
        binary.decode_client_frame(_publish(float("nan")))
    assert (raised.value.code, raised.value.id) == ("bad_frame", "k-1")


def test_a_huge_announced_length_in_a_small_frame_allocates_nothing() -> None:
    frame = b"\x81\xa4data\xdd\xff\xff\xff\xff"  # an array of 4 billion elements, 10 bytes long
    with pytest.raises(IngressError):
        binary.decode_client_frame(frame)


def test_peek_names_type_id_and_channel_of_small_frames_only() -> None:
    assert binary.peek(msgpack.packb({"type": "subscribe", "channel": "news"})) == ("subscribe", None, "news")
    assert binary.peek(_publish(1)) == ("publish", "k-1", None)
    assert binary.peek(b"\xc1") == (None, None, None)
    assert binary.peek(_publish("x" * 10_000)) == (None, None, None)


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(_values, st.sampled_from(["k-1", None]))
def test_any_data_round_trips_through_the_server_as_tagged_json(data: Any, frame_id: str | None) -> None:
    read = binary.decode_client_frame(binary.encode(Publish("c", data, frame_id, None)))
    stored = codec.json_text(read.data)  # type: ignore[union-attr]
    out = binary.decode_server_frame(binary.encode_publication("c", "1-1", "message", stored))
    assert out == Publication("c", data, "1-1")


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_are_a_frame_or_bad_frame_never_a_crash(frame: bytes) -> None:
    decoded = _decode_or_code(frame)
    if isinstance(decoded, str):
        assert decoded in ("bad_frame", "unknown_type")
    else:
        assert codec.json_text(getattr(decoded, "data", None))  # whatever passed can be stored


@settings(max_examples=300)
@given(st.sampled_from(CLIENT_FRAMES), st.data())
def test_fuzz_mutated_frames_are_a_frame_or_bad_frame_never_a_crash(frame: ClientFrame, data: Any) -> None:
    raw = bytearray(binary.encode(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    decoded = _decode_or_code(bytes(raw))
    if isinstance(decoded, str):
        assert decoded in ("bad_frame", "unknown_type")
    else:
        text = codec.json_text(getattr(decoded, "data", None))
        assert not any(math.isnan(v) for v in _floats(json.loads(text)))


def _decode_or_code(frame: bytes) -> ClientFrame | str:
    """The frame decoded, or the code of the refusal (any other exception fails the test)."""
    try:
        return binary.decode_client_frame(frame)
    except IngressError as exc:
        return exc.code


def _floats(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, list):
        return [f for item in value for f in _floats(item)]
    if isinstance(value, dict):
        return [f for item in value.values() for f in _floats(item)]
    return []


def test_the_binding_is_available_without_importing_msgpack_first() -> None:
    assert binary.available()
    assert binary.SUBPROTOCOL == "pyrt.v1.msgpack"


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_traceparent_rides_the_binary_binding_under_the_codecs_rules() -> None:
    assert "traceparent" not in msgpack.unpackb(binary.encode_message(b"\x00", "m-1"))
    message = binary.encode_message(b"\x00", "m-1", None, TRACEPARENT)
    assert msgpack.unpackb(message)["traceparent"] == TRACEPARENT
    read = binary.decode_client_frame(message)
    assert isinstance(read, Message)
    assert read.traceparent == TRACEPARENT
    publish = binary.decode_client_frame(binary.encode(Publish("c", b"\x01", "p-1", None, TRACEPARENT)))
    assert isinstance(publish, Publish)
    assert publish.traceparent == TRACEPARENT
    bad = msgpack.packb({"type": "publish", "id": "p-2", "channel": "c", "data": 1, "traceparent": "00-zz"})
    with pytest.raises(IngressError) as raised:
        binary.decode_client_frame(bad)
    assert raised.value.code == "bad_frame"
    assert raised.value.id == "p-2"
