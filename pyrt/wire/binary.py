"""The binary binding of the pyrt protocol: the same frames as MessagePack (subprotocol
``pyrt.v1.msgpack``, docs/protocol.md "The binary binding").

Each frame is one MessagePack map with the same keys and values as its JSON form, plus what JSON
cannot carry: ``bin`` values (``bytes``) and arrays (ext type :data:`EXT_NDARRAY`: a MessagePack
array ``[dtype, shape]`` followed by the raw bytes, C order, see :mod:`pyrt.wire.ndarray`). No
other ext type is defined. A batch is several frames one after another in one binary message.

The field rules are the JSON codec's (:func:`pyrt.wire.codec.read_client_object`,
:func:`~pyrt.wire.codec.read_server_object`): the bindings differ only in how a map is written.

Inside a server, a publication's data is kept as JSON text whatever binding it came from; what JSON
cannot carry is kept in a *tagged* form, which is also what JSON subscribers receive:

- bytes: ``{"$pyrt": "bytes", "base64": "..."}``;
- an array: ``{"$pyrt": "ndarray", "dtype": "<f4", "shape": [2, 3], "base64": "..."}``.

:func:`tag` makes that form of a value read on the binary binding; :func:`untag` turns it back
(for a binary subscriber, once per fan-out: :func:`encode_publication`, :func:`transcode`).

Client side: :func:`encode`, :func:`encode_message`, :func:`decode_server_frame` (lenient, never
raises), :func:`decode_batch`. Server side: :func:`decode_client_frame` (strict, raises
:class:`~pyrt.wire.ingress.IngressError`): valid UTF-8 text, string keys, finite floats, no ext type
but ours, nesting at most :data:`MAX_DEPTH` deep; sizes are bounded by the frame's own length (the
decoder never allocates more than the frame announces and holds).

``msgpack`` is imported on first use, not with this module: a client that never speaks the binary
binding never loads it. NumPy is imported only to send a NumPy array, or to decode a received
array when it is importable (else the array arrives as :class:`~pyrt.wire.ndarray.NDArray`).
"""

from __future__ import annotations

import binascii
import importlib.util
import json
import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Final

from pyrt.errors import EncodeError
from pyrt.wire import codec
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    ClientFrame,
    ErrorFrame,
    HistoryRequest,
    Inbound,
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
from pyrt.wire.names import is_channel_name, is_message_id
from pyrt.wire.ndarray import NDArray, dtype_itemsize
from pyrt.wire.types import Frame

__all__ = [
    "EXT_NDARRAY",
    "MAX_DEPTH",
    "SUBPROTOCOL",
    "available",
    "decode_batch",
    "decode_client_frame",
    "decode_server_frame",
    "encode",
    "encode_message",
    "encode_publication",
    "json_form",
    "pack",
    "peek",
    "tag",
    "transcode",
    "unpack",
    "untag",
]

SUBPROTOCOL: Final = "pyrt.v1.msgpack"
#: The MessagePack ext type of an array.
EXT_NDARRAY: Final = 1
#: Containers nested deeper than this are refused at ingress.
MAX_DEPTH: Final = 64
_TAG: Final = "$pyrt"
_PEEK_MAX: Final = 8192

_msgpack: Any = None
_numpy_present: bool | None = None


def available() -> bool:
    """Whether the binary binding can be spoken here (``msgpack`` importable), without importing it."""
    return _msgpack is not None or importlib.util.find_spec("msgpack") is not None


def _lib() -> Any:
    global _msgpack
    if _msgpack is None:
        import msgpack  # on first use: start-up never pays for it

        _msgpack = msgpack
    return _msgpack


# ------------------------------------------------------------------------------------- arrays


def _array_ext(dtype: str, shape: tuple[int, ...], raw: bytes | memoryview) -> Any:
    header = _lib().packb([dtype, list(shape)])
    return _lib().ExtType(EXT_NDARRAY, header + bytes(raw))


def _numpy_ext(value: Any) -> Any:
    """A NumPy array (or NumPy scalar) as MessagePack can carry it; :class:`EncodeError` for
    object and structured arrays."""
    dtype = value.dtype
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise EncodeError(
            f"cannot send an array of dtype {dtype!s}: object and structured arrays cannot travel "
            "without pickling; send a plain numeric array"
        )
    if type(value).__name__ != "ndarray":  # a NumPy scalar: the Python number it holds
        return value.item()
    import numpy  # only when an array is sent

    contiguous = value if value.flags.c_contiguous else numpy.array(value, order="C")
    try:
        dtype_itemsize(contiguous.dtype.str)
    except ValueError as exc:
        raise EncodeError(f"cannot send an array of dtype {dtype!s}: {exc}") from None
    raw = contiguous.reshape(-1).view(numpy.uint8).data  # its bytes, not a copy (any dtype)
    return _array_ext(contiguous.dtype.str, contiguous.shape, raw)


def _default(encoder: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    def default(value: Any) -> Any:
        if type(value) is NDArray:
            return _array_ext(value.dtype, value.shape, value.data)
        if type(value) is RawJSON:
            return untag(json.loads(value.text))
        if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
            return _numpy_ext(value)
        if encoder is not None:
            return encoder(value)
        raise TypeError(f"cannot send a {type(value).__name__}")

    return default


_plain_default = _default(None)


def _array_from_ext(payload: bytes) -> NDArray:
    unpacker = _lib().Unpacker(max_buffer_size=len(payload))
    unpacker.feed(payload)
    header = unpacker.unpack()
    if not (isinstance(header, list) and len(header) == 2 and isinstance(header[1], list)):
        raise ValueError("an array's header must be [dtype, shape]")
    return NDArray(header[0], tuple(header[1]), memoryview(payload)[unpacker.tell() :])


def _client_ext_hook(code: int, payload: bytes) -> Any:
    if code != EXT_NDARRAY:
        return _lib().ExtType(code, payload)  # reported as a BadFrame by the caller's check
    array = _array_from_ext(payload)
    return array.to_numpy() if _has_numpy() else array


def _has_numpy() -> bool:
    global _numpy_present
    if _numpy_present is None:
        _numpy_present = importlib.util.find_spec("numpy") is not None
    return _numpy_present


def _server_ext_hook(code: int, payload: bytes) -> Any:
    if code != EXT_NDARRAY:
        raise IngressError(
            "bad_frame", f"MessagePack ext type {code} is not a pyrt type (only {EXT_NDARRAY}: array)"
        )
    try:
        return _array_from_ext(payload)
    except IngressError:
        raise
    except Exception as exc:
        raise IngressError("bad_frame", f"bad array: {exc}") from None


# --------------------------------------------------------------------------- values and tags


def pack(value: Any, encoder: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as MessagePack (bytes as ``bin``, arrays as ext :data:`EXT_NDARRAY`,
    :class:`RawJSON` as the value it holds); :class:`EncodeError` when it cannot travel.
    ``encoder`` turns other values into ones that can (e.g. a ``datetime`` into a string)."""
    try:
        result: bytes = _lib().packb(
            value, default=_plain_default if encoder is None else _default(encoder), datetime=False
        )
    except EncodeError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(
            f"cannot send a {type(value).__name__} on the binary binding: {exc}; send str, bytes, "
            "numbers, bool, None, lists, dicts with str keys, or NumPy arrays"
        ) from exc
    return result


def unpack(data: bytes) -> Any:
    """A value written by :func:`pack`, arrays as NumPy arrays when NumPy is importable (else
    :class:`NDArray`); :class:`ValueError` when it is not MessagePack."""
    try:
        return _lib().unpackb(data, raw=False, ext_hook=_client_ext_hook, strict_map_key=False)
    except Exception as exc:
        raise ValueError(f"not MessagePack: {exc}") from None


def tag(value: Any, depth: int = 0) -> Any:
    """``value`` (as read on the binary binding) with bytes and arrays in their tagged JSON form,
    checked: :class:`IngressError` for non-string keys, non-finite floats, ext types that are not
    ours, or nesting deeper than :data:`MAX_DEPTH`."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise IngressError("bad_frame", "NaN and infinities cannot be stored or sent")
        return value
    if depth >= MAX_DEPTH:
        raise IngressError("bad_frame", f"data nested more than {MAX_DEPTH} deep")
    if kind is list:
        return [tag(item, depth + 1) for item in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise IngressError("bad_frame", "map keys must be strings")
            out[key] = tag(item, depth + 1)
        return out
    if kind is bytes:
        return {_TAG: "bytes", "base64": binascii.b2a_base64(value, newline=False).decode("ascii")}
    if kind is NDArray:
        return {
            _TAG: "ndarray",
            "dtype": value.dtype,
            "shape": list(value.shape),
            "base64": binascii.b2a_base64(value.data, newline=False).decode("ascii"),
        }
    raise IngressError(
        "bad_frame", f"a {kind.__name__} is not pyrt data (MessagePack ext types other than arrays)"
    )


def json_form(value: Any) -> Any:
    """``value`` with bytes (and ``bytearray``, ``memoryview``), :class:`NDArray` and NumPy arrays
    in their tagged JSON form, tuples as lists: what a server keeps of data made in Python (an
    application's results)."""
    kind = type(value)
    if kind is list or kind is tuple:
        return [json_form(item) for item in value]
    if kind is dict:
        return {key: json_form(item) for key, item in value.items()}
    if kind is bytes or kind is bytearray or kind is memoryview:
        return tag(bytes(value))
    if kind is NDArray:
        return tag(value)
    if kind.__module__ == "numpy" and hasattr(value, "dtype"):
        ext = _numpy_ext(value)
        return tag(_array_from_ext(ext.data)) if isinstance(ext, _lib().ExtType) else ext
    return value


def untag(value: Any) -> Any:
    """``value`` with the tagged forms of bytes and arrays (:func:`tag`) turned back into
    ``bytes`` and :class:`NDArray`; anything that only looks like one stays as it is."""
    kind = type(value)
    if kind is list:
        return [untag(item) for item in value]
    if kind is not dict:
        return value
    marker = value.get(_TAG)
    if marker is not None:
        found = _untag_one(marker, value)
        if found is not None:
            return found
    return {key: untag(item) for key, item in value.items()}


def _untag_one(marker: Any, value: dict[str, Any]) -> Any:
    text = value.get("base64")
    if not isinstance(text, str):
        return None
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if marker == "bytes" and len(value) == 2:
        return raw
    if marker == "ndarray" and len(value) == 4 and isinstance(value.get("shape"), list):
        try:
            return NDArray(value.get("dtype"), tuple(value["shape"]), raw)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return None
    return None


def _from_json_text(text: str) -> Any:
    value = json.loads(text)
    return untag(value) if '"$pyrt"' in text else value


def transcode(text: str) -> bytes:
    """A frame the JSON codec wrote, as the binary binding writes it (tagged data untagged)."""
    return pack(_from_json_text(text))


# ----------------------------------------------------------------------------------- encoding

_NAMES: Final[dict[type, str]] = {
    Ping: "ping",
    Pong: "pong",
    Message: "message",
    Subscribe: "subscribe",
    Unsubscribe: "unsubscribe",
    Publish: "publish",
    HistoryRequest: "history",
    PresenceRequest: "presence",
    PresenceJoin: "presence_join",
    PresenceLeave: "presence_leave",
    Refresh: "refresh",
    Welcome: "welcome",
    Ack: "ack",
    Publication: "publication",
    Subscribed: "subscribed",
    Unsubscribed: "unsubscribed",
    PresenceDiff: "presence_diff",
    ErrorFrame: "error",
}
#: Fields written even when ``None`` / ``False`` (their absence means something else).
_ALWAYS: Final = {"ok", "recovered", "since"}
#: Flags left out when false, as the JSON codec does.
_FLAGS: Final = {"presence", "reverse", "duplicate"}


def _member(member: Any) -> Any:
    if type(member) is RawJSON:
        return json.loads(member.text)
    assert isinstance(member, Member)
    return {"client": member.client, "user": member.user, "info": member.info}


def _map(frame: ClientFrame | ServerFrame) -> dict[str, Any]:
    name = _NAMES.get(type(frame))
    if name is None:
        raise TypeError(f"not a pyrt frame: {frame!r}")
    out: dict[str, Any] = {"type": name}
    for field in fields(frame):
        key = field.name
        value = getattr(frame, key)
        if value is None or (value is False and key in _FLAGS):
            if key in _ALWAYS:
                out[key] = value
            continue
        out[key] = value
    kind = type(frame)
    if kind is Ack:
        assert isinstance(frame, Ack)
        if frame.ok and not frame.duplicate and "data" not in out:
            out["data"] = None
    elif kind is Publication:
        out.setdefault("offset", "")
        del out["recovered"]  # the client's own note, never on the wire
    elif kind is Welcome:
        if "limits" in out:
            out["limits"] = out["limits"].to_wire()
    elif kind is Subscribed:
        if "presence" in out:
            members, version = out["presence"]
            out["presence"] = {"members": [_member(m) for m in members], "version": version}
    elif kind is PresenceDiff:
        out["joins"] = [_member(m) for m in out.get("joins", [])]
        out["leaves"] = [_member(m) for m in out.get("leaves", [])]
    return out


def encode(frame: ClientFrame | ServerFrame, encoder: Callable[[Any], Any] | None = None) -> bytes:
    """The binary form of ``frame`` (:class:`EncodeError` when its data cannot travel)."""
    return pack(_map(frame), encoder)


def encode_message(
    data: Any, id: Any = None, encoder: Callable[[Any], Any] | None = None, traceparent: str | None = None
) -> bytes:
    """A ``message`` frame: the hot path of ``send`` and ``send_with_ack``."""
    return pack(_map(Message(data, id, traceparent)), encoder)


def encode_publication(channel: str, offset: str, event: str, data_json: str) -> bytes:
    """A ``publication`` frame from the data a server keeps (JSON text, tagged): the hot path of
    a fan-out to binary subscribers, built once per fan-out."""
    return pack(_map(Publication(channel, _from_json_text(data_json), offset, event)))


# ------------------------------------------------------------------------- decoding, client side


def decode_server_frame(frame: Frame) -> Inbound:
    """What a binary frame a server sent means; :class:`BadFrame` (never an exception) when it
    is not a pyrt frame."""
    if isinstance(frame, str):
        return codec.decode_server_frame(frame)
    try:
        obj = unpack(frame)
    except ValueError as exc:
        return BadFrame(str(exc), frame)
    return codec.read_server_object(obj, frame)


def decode_batch(frame: bytes) -> list[Inbound]:
    """The frames of a binary message, one or several (a batch: one after another), decoded;
    what cannot be read is a :class:`BadFrame` (never an exception)."""
    lib = _lib()
    try:
        return [codec.read_server_object(_unpack_one(frame), frame)]
    except lib.ExtraData as extra:  # a batch: the first frame, then the rest
        first, rest = extra.unpacked, extra.extra
    except ValueError as exc:
        return [BadFrame(str(exc), frame)]
    events = [codec.read_server_object(first, frame)]
    unpacker = lib.Unpacker(
        raw=False, ext_hook=_client_ext_hook, strict_map_key=False, max_buffer_size=len(rest) or 1
    )
    unpacker.feed(rest)
    try:
        for obj in unpacker:
            events.append(codec.read_server_object(obj, frame))
    except Exception as exc:
        events.append(BadFrame(f"not MessagePack: {exc}", frame))
    return events


def _unpack_one(frame: bytes) -> Any:
    """One MessagePack value (client side, lenient about keys); ``msgpack.ExtraData`` when more
    follow it, :class:`ValueError` when it is not MessagePack."""
    lib = _lib()
    try:
        return lib.unpackb(frame, raw=False, ext_hook=_client_ext_hook, strict_map_key=False)
    except lib.ExtraData:
        raise
    except Exception as exc:
        raise ValueError(f"not MessagePack: {exc}") from None


# ------------------------------------------------------------------------- decoding, server side


def _strict_unpack(frame: bytes) -> Any:
    try:
        return _lib().unpackb(
            frame, raw=False, ext_hook=_server_ext_hook, strict_map_key=True, use_list=True, timestamp=0
        )
    except IngressError:
        raise
    except Exception:
        raise IngressError("bad_frame", "the frame is not valid MessagePack") from None


def decode_client_frame(frame: bytes) -> ClientFrame:
    """What a binary frame a client sent means, checked strictly (see the module docstring);
    :class:`~pyrt.wire.ingress.IngressError` when it must be refused (the connection stays open).
    Bytes and arrays in it come out in their tagged JSON form (:func:`tag`)."""
    obj = _strict_unpack(frame)
    if not isinstance(obj, dict):
        raise IngressError("bad_frame", "a frame must be a MessagePack map")
    try:
        tagged = tag(obj)
    except IngressError as exc:  # name the frame when it has a readable id, as for JSON
        frame_id = obj.get("id")
        raise IngressError(exc.code, str(exc), id=frame_id if is_message_id(frame_id) else None) from None
    return codec.read_client_object(tagged)


def peek(frame: bytes) -> tuple[str | None, str | None, str | None]:
    """``(type, id, channel)`` of a binary frame refused before it is read (over the rate);
    frames over 8 KiB name nothing."""
    if len(frame) > _PEEK_MAX:
        return None, None, None
    try:
        obj = _strict_unpack(frame)
    except IngressError:
        return None, None, None
    if not isinstance(obj, dict):
        return None, None, None
    kind, frame_id, channel = obj.get("type"), obj.get("id"), obj.get("channel")
    kind = kind if isinstance(kind, str) else None
    channel = channel if kind in ("subscribe", "unsubscribe") and is_channel_name(channel) else None
    return kind, (frame_id if is_message_id(frame_id) else None), channel
