"""The one codec of the pyrt protocol: frames (:mod:`pyrt.wire.frames`) to text and back.

Every frame is one compact JSON object on one line with a string ``type`` (docs/protocol.md).
The client's engine, the server's session, the sharing relay and the fake server all write and
read frames here; no other module spells a frame.

- :func:`encode` writes any frame, either direction. Values that are :class:`RawJSON` go in as
  they are (a publication's stored data, members the server encoded once), with raw line breaks
  turned into spaces so that a frame stays one line (batches are split at line breaks).
  Fast paths for the hottest frames: :func:`encode_message`, :func:`encode_publication`.
- :func:`decode_server_frame` reads what a server sent, leniently: the client reports a frame
  it cannot read (:class:`BadFrame`) and carries on. :func:`decode_batch` reads a batched message
  (several frames, one per line, subprotocol ``pyrt.v1.batch``).
- :func:`decode_client_frame` reads what a client sent, strictly (:mod:`pyrt.wire.ingress`: no
  lone surrogates, no ``NaN``) and checks every field against the protocol's grammar
  (:mod:`pyrt.wire.names`, :mod:`pyrt.wire.offsets`); anything else raises
  :class:`~pyrt.wire.ingress.IngressError`, which names the error code and, when the frame had a
  readable one, its ``id`` and ``channel``.
  Policy (sizes, rates, who may do what) is the server's, not the codec's.

JSON is written by one encoder object (``json.dumps`` with options builds a new encoder per call),
never with ``NaN``, and without escaping non-ASCII text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Final

from pyrt.errors import EncodeError
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    ClientFrame,
    ErrorFrame,
    HistoryPage,
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
    read_members,
)
from pyrt.wire.ingress import IngressError, check_text, loads
from pyrt.wire.limits import ServerLimits
from pyrt.wire.names import (
    CHANNEL_RULE,
    EVENT_RULE,
    ID_RULE,
    TRACEPARENT_RULE,
    is_channel_name,
    is_event_name,
    is_message_id,
    is_traceparent,
)
from pyrt.wire.offsets import parse_offset
from pyrt.wire.types import Frame

__all__ = [
    "BATCH_SEPARATOR",
    "HTTP_CLOSE_EVENT",
    "KEY_MAX",
    "decode_batch",
    "decode_client_frame",
    "decode_http_close",
    "decode_server_frame",
    "encode",
    "encode_batch",
    "encode_history_page",
    "encode_http_close",
    "encode_member",
    "encode_members",
    "encode_message",
    "encode_publication",
    "http_close_event",
    "http_event",
    "json_text",
    "peek",
    "read_client_object",
    "read_server_object",
    "split_posted",
]

BATCH_SEPARATOR: Final = "\n"
#: The longest presence ``key`` a client may name.
KEY_MAX: Final = 64

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_string: Callable[[str], str] = json.encoder.encode_basestring


def json_text(value: Any) -> str:
    """``value`` as compact JSON text (:class:`RawJSON` as it is); :class:`EncodeError` when it
    cannot be JSON."""
    if type(value) is RawJSON:
        return _one_line(value.text)
    try:
        return _dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise EncodeError(
            f"cannot send a {type(value).__name__} as JSON: {exc}; "
            "send str or JSON-serialisable dict/list/number/bool/None (bytes and arrays travel on the "
            "binary binding, pyrt.v1.msgpack: install msgpack and use protocol='pyrt')"
        ) from exc


def _one_line(text: str) -> str:
    """JSON text on one line: a raw line break in valid JSON is whitespace."""
    if "\n" in text or "\r" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text


# ------------------------------------------------------------------------------------- encoding


def encode_message(data: Any, id: Any = None, traceparent: str | None = None) -> str:
    """``{"type":"message",...}``: the hot path of ``send`` and ``send_with_ack``."""
    if traceparent is not None:
        pairs: list[tuple[str, Any]] = [] if id is None else [("id", id)]
        return _fields("message", [*pairs, ("traceparent", traceparent), ("data", data)])
    if id is None:
        return '{"type":"message","data":' + json_text(data) + "}"
    return '{"type":"message","id":' + json_text(id) + ',"data":' + json_text(data) + "}"


def encode_publication(channel: str, offset: str, event: str, data: Any) -> str:
    """``{"type":"publication",...}``: the hot path of a server's fan-out (encoded once, shared)."""
    return (
        '{"type":"publication","channel":'
        + _string(channel)
        + ',"offset":'
        + _string(offset)
        + ',"event":'
        + _string(event)
        + ',"data":'
        + json_text(data)
        + "}"
    )


def _members(members: Sequence[Member] | Sequence[RawJSON]) -> str:
    parts = []
    for member in members:
        if type(member) is RawJSON:
            parts.append(_one_line(member.text))
        else:
            assert isinstance(member, Member)
            parts.append(encode_member(member.client, member.user, member.info))
    return "[" + ",".join(parts) + "]"


def encode_member(client: str, user: str | None, info: Any) -> str:
    """One presence member as a server keeps it (encoded once, shared by every frame naming it)."""
    return '{"client":' + _string(client) + ',"user":' + json_text(user) + ',"info":' + json_text(info) + "}"


def encode_members(members: Sequence[Member] | Sequence[RawJSON], version: str) -> str:
    """The data of the ack to a ``presence`` request: ``{"members":[...],"version":V}``."""
    return '{"members":' + _members(members) + ',"version":' + _string(version) + "}"


def encode_history_page(page: HistoryPage) -> str:
    """The data of the ack to a ``history`` request; each publication's data goes in as it is
    (:class:`RawJSON` as stored, never parsed again)."""
    parts = [
        '{"offset":'
        + json_text(p.offset)
        + ',"event":'
        + _string(p.event)
        + ',"data":'
        + json_text(p.data)
        + "}"
        for p in page.publications
    ]
    return (
        '{"publications":['
        + ",".join(parts)
        + '],"offset":'
        + _string(page.offset)
        + (',"recovered":true' if page.recovered else ',"recovered":false')
        + (',"more":true}' if page.more else ',"more":false}')
    )


def _fields(kind: str, pairs: list[tuple[str, Any]]) -> str:
    out = '{"type":"' + kind + '"'
    for name, value in pairs:
        out += ',"' + name + '":' + json_text(value)
    return out + "}"


def _ping(frame: Ping) -> str:
    return '{"type":"ping"}' if frame.t is None else '{"type":"ping","t":' + json_text(frame.t) + "}"


def _pong(frame: Pong) -> str:
    return '{"type":"pong"}' if frame.t is None else '{"type":"pong","t":' + json_text(frame.t) + "}"


def _message(frame: Message) -> str:
    return encode_message(frame.data, frame.id, frame.traceparent)


def _subscribe(frame: Subscribe) -> str:
    out = '{"type":"subscribe","channel":' + _string(frame.channel) + ',"since":' + json_text(frame.since)
    return out + (',"presence":true}' if frame.presence else "}")


def _unsubscribe(frame: Unsubscribe) -> str:
    return '{"type":"unsubscribe","channel":' + _string(frame.channel) + "}"


def _publish(frame: Publish) -> str:
    pairs: list[tuple[str, Any]] = [] if frame.id is None else [("id", frame.id)]
    pairs += [("channel", frame.channel), ("data", frame.data)]
    if frame.event is not None:
        pairs.append(("event", frame.event))
    if frame.traceparent is not None:
        pairs.append(("traceparent", frame.traceparent))
    return _fields("publish", pairs)


def _history(frame: HistoryRequest) -> str:
    pairs: list[tuple[str, Any]] = [("id", frame.id), ("channel", frame.channel)]
    if frame.limit is not None:
        pairs.append(("limit", frame.limit))
    if frame.since is not None:
        pairs.append(("since", frame.since))
    if frame.reverse:
        pairs.append(("reverse", True))
    return _fields("history", pairs)


def _presence(frame: PresenceRequest) -> str:
    return _fields("presence", [("id", frame.id), ("channel", frame.channel)])


def _join(frame: PresenceJoin) -> str:
    pairs: list[tuple[str, Any]] = [] if frame.id is None else [("id", frame.id)]
    return _fields(
        "presence_join", [*pairs, ("channel", frame.channel), ("info", frame.info), ("key", frame.key)]
    )


def _leave(frame: PresenceLeave) -> str:
    pairs: list[tuple[str, Any]] = [] if frame.id is None else [("id", frame.id)]
    return _fields("presence_leave", [*pairs, ("channel", frame.channel), ("key", frame.key)])


def _refresh(frame: Refresh) -> str:
    pairs: list[tuple[str, Any]] = [] if frame.id is None else [("id", frame.id)]
    return _fields("refresh", [*pairs, ("token", frame.token)])


def _welcome(frame: Welcome) -> str:
    pairs: list[tuple[str, Any]] = [("session", frame.session), ("server", frame.server)]
    if frame.heartbeat is not None:
        pairs.append(("heartbeat", frame.heartbeat))
    if frame.limits is not None:
        pairs.append(("limits", frame.limits.to_wire()))
    if frame.ttl is not None:
        pairs.append(("ttl", frame.ttl))
    if frame.key is not None:
        pairs.append(("key", frame.key))
    return _fields("welcome", pairs)


def _ack(frame: Ack) -> str:
    out = '{"type":"ack","id":' + json_text(frame.id) + (',"ok":true' if frame.ok else ',"ok":false')
    if (frame.ok and not frame.duplicate) or frame.data is not None:
        out += ',"data":' + json_text(frame.data)
    if frame.error is not None:
        out += ',"error":' + json_text(frame.error)
    if frame.code is not None:
        out += ',"code":' + _string(frame.code)
    if frame.retry_after is not None:
        out += ',"retry_after":' + json_text(frame.retry_after)
    return out + (',"duplicate":true}' if frame.duplicate else "}")


def _publication(frame: Publication) -> str:
    offset = frame.offset if frame.offset is not None else ""
    return encode_publication(frame.channel, offset, frame.event, frame.data)


def _subscribed(frame: Subscribed[Any]) -> str:
    out = (
        '{"type":"subscribed","channel":'
        + _string(frame.channel)
        + ',"offset":'
        + json_text(frame.offset)
        + (',"recovered":true' if frame.recovered else ',"recovered":false')
    )
    if frame.presence is not None:
        members, version = frame.presence
        out += ',"presence":{"members":' + _members(members) + ',"version":' + _string(version) + "}"
    return out + "}"


def _unsubscribed(frame: Unsubscribed) -> str:
    return '{"type":"unsubscribed","channel":' + _string(frame.channel) + "}"


def _presence_diff(frame: PresenceDiff[Any]) -> str:
    return (
        '{"type":"presence_diff","channel":'
        + _string(frame.channel)
        + ',"version":'
        + _string(frame.version)
        + ',"joins":'
        + _members(frame.joins)
        + ',"leaves":'
        + _members(frame.leaves)
        + "}"
    )


def _error(frame: ErrorFrame) -> str:
    pairs: list[tuple[str, Any]] = [("code", frame.code), ("message", frame.message)]
    if frame.id is not None:
        pairs.append(("id", frame.id))
    if frame.channel is not None:
        pairs.append(("channel", frame.channel))
    if frame.retry_after is not None:
        pairs.append(("retry_after", frame.retry_after))
    return _fields("error", pairs)


_ENCODERS: dict[type, Callable[[Any], str]] = {
    Ping: _ping,
    Pong: _pong,
    Message: _message,
    Subscribe: _subscribe,
    Unsubscribe: _unsubscribe,
    Publish: _publish,
    HistoryRequest: _history,
    PresenceRequest: _presence,
    PresenceJoin: _join,
    PresenceLeave: _leave,
    Refresh: _refresh,
    Welcome: _welcome,
    Ack: _ack,
    Publication: _publication,
    Subscribed: _subscribed,
    Unsubscribed: _unsubscribed,
    PresenceDiff: _presence_diff,
    ErrorFrame: _error,
}


def encode(frame: ClientFrame | ServerFrame) -> str:
    """The text of ``frame``: one compact JSON object on one line (:class:`EncodeError` when a
    value cannot be JSON)."""
    encoder = _ENCODERS.get(type(frame))
    if encoder is None:
        raise TypeError(f"not a pyrt frame: {frame!r}")
    return encoder(frame)


def encode_batch(texts: list[str]) -> str:
    """Several encoded frames as one batched message (``pyrt.v1.batch``): one per line."""
    return BATCH_SEPARATOR.join(texts)


# --------------------------------------------------------------------- decoding, client side

_INVALID_JSON: Final = "invalid JSON"


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _seconds(value: Any, most: float = 3600.0) -> float | None:
    """A duration a server sent: a non-negative number (at most ``most``), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return None
    return min(float(value), most)


def _read_message(obj: dict[str, Any], frame: Frame) -> Inbound:
    return Message(obj.get("data"))


def _read_publication(obj: dict[str, Any], frame: Frame) -> Inbound:
    get = obj.get
    return Publication(str(get("channel", "")), get("data"), get("offset"), get("event") or "message")


def _read_ack(obj: dict[str, Any], frame: Frame) -> Inbound:
    get = obj.get
    if get("ok"):
        return Ack(get("id"), True, get("data"), duplicate=get("duplicate") is True)
    return Ack(
        get("id"),
        False,
        get("data"),
        get("error"),
        _code(get("code")),
        _seconds(get("retry_after")),
        get("duplicate") is True,
    )


def _read_pong(obj: dict[str, Any], frame: Frame) -> Inbound:
    return Pong(obj.get("t"))


def _read_ping(obj: dict[str, Any], frame: Frame) -> Inbound:
    return Ping(obj.get("t"))


def _read_subscribed(obj: dict[str, Any], frame: Frame) -> Inbound:
    get = obj.get
    channel = str(get("channel", ""))
    presence = get("presence")
    snapshot = None
    if isinstance(presence, dict):
        try:
            snapshot = (read_members(channel, presence.get("members")), str(presence.get("version")))
        except ValueError as exc:
            return BadFrame(str(exc), frame)
    return Subscribed(channel, get("offset"), bool(get("recovered", True)), snapshot)


def _read_presence_diff(obj: dict[str, Any], frame: Frame) -> Inbound:
    get = obj.get
    channel = str(get("channel", ""))
    try:
        joins, leaves = read_members(channel, get("joins")), read_members(channel, get("leaves"))
    except ValueError as exc:
        return BadFrame(str(exc), frame)
    return PresenceDiff(channel, str(get("version")), joins, leaves)


def _read_unsubscribed(obj: dict[str, Any], frame: Frame) -> Inbound:
    return Unsubscribed(str(obj.get("channel", "")))


def _read_welcome(obj: dict[str, Any], frame: Frame) -> Inbound:
    get = obj.get
    limits = ServerLimits.from_wire(get("limits"))
    ttl = _seconds(get("ttl"), most=math.inf)  # a token's lifetime is not capped
    key = get("key")
    return Welcome(
        get("session"), get("server"), get("heartbeat"), limits, ttl, key if isinstance(key, str) else None
    )


def _read_error(obj: dict[str, Any], frame: Frame) -> Inbound:
    get = obj.get
    named = get("channel")
    return ErrorFrame(
        str(get("code")),
        str(get("message", "")),
        get("id"),
        _seconds(get("retry_after")),
        named if isinstance(named, str) else None,
    )


_SERVER_READERS: dict[str, Callable[[dict[str, Any], Frame], Inbound]] = {
    "message": _read_message,
    "publication": _read_publication,
    "ack": _read_ack,
    "pong": _read_pong,
    "ping": _read_ping,
    "subscribed": _read_subscribed,
    "presence_diff": _read_presence_diff,
    "unsubscribed": _read_unsubscribed,
    "welcome": _read_welcome,
    "error": _read_error,
}


def decode_server_frame(frame: Frame) -> Inbound:
    """What a frame a server sent means; :class:`BadFrame` (never an exception) when it is not
    a pyrt frame."""
    if not isinstance(frame, str):
        return BadFrame("binary frame on a JSON protocol", frame)
    try:
        obj = json.loads(frame)
    except ValueError:
        return BadFrame(_INVALID_JSON, frame)
    return read_server_object(obj, frame)


def read_server_object(obj: Any, frame: Frame) -> Inbound:
    """What a server frame means once parsed (by either binding) into ``obj``."""
    if not isinstance(obj, dict):
        return BadFrame("not a JSON object", frame)
    kind = obj.get("type")
    reader = _SERVER_READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        return BadFrame(f"unknown frame type {kind!r}", frame)
    return reader(obj, frame)


def split_batch(frame: str) -> list[str] | None:
    """The frames of a batched message (compact JSON frames separated by line breaks); ``None``
    when it holds one frame. A message whose first line is not a JSON value on its own is one
    frame with line breaks in it (a server that pretty-prints)."""
    lines = [line for line in frame.split(BATCH_SEPARATOR) if line]
    if len(lines) < 2:
        return None
    try:
        json.loads(lines[0])
    except ValueError:
        return None
    return lines


def decode_batch(frame: str) -> list[Inbound] | None:
    """The frames of a batched message, decoded; ``None`` when it holds one frame (then
    :func:`decode_server_frame` reads it whole)."""
    lines = [line for line in frame.split(BATCH_SEPARATOR) if line]
    if len(lines) < 2:
        return None
    first = decode_server_frame(lines[0])
    if type(first) is BadFrame and first.reason == _INVALID_JSON:
        return None
    return [first, *(decode_server_frame(line) for line in lines[1:])]


# --------------------------------------------------------------------- decoding, server side


def _id_of(obj: dict[str, Any]) -> str | None:
    value = obj.get("id")
    return value if is_message_id(value) else None


def _optional_id(obj: dict[str, Any]) -> str | None:
    """The frame's id: absent is fine, anything but a valid id is refused."""
    value = obj.get("id")
    if value is None:
        return None
    if not is_message_id(value):
        raise IngressError("bad_frame", ID_RULE)
    return value


def _channel(obj: dict[str, Any], frame_id: str | None) -> str:
    channel = obj.get("channel")
    if not is_channel_name(channel):
        raise IngressError("bad_frame", CHANNEL_RULE, id=frame_id)
    return channel


def _key(obj: dict[str, Any], frame_id: str | None) -> str:
    key = obj.get("key", "")
    if not isinstance(key, str) or len(key) > KEY_MAX:
        raise IngressError("bad_frame", f"key must be a string of at most {KEY_MAX} characters", id=frame_id)
    return key


def _from_ping(obj: dict[str, Any]) -> ClientFrame:
    return Ping(obj.get("t"))


def _from_pong(obj: dict[str, Any]) -> ClientFrame:
    return Pong(obj.get("t"))


def _traceparent(obj: dict[str, Any], frame_id: str | None) -> str | None:
    """The frame's ``traceparent``: absent is fine, anything but the W3C grammar is refused."""
    value = obj.get("traceparent")
    if value is None:
        return None
    if not is_traceparent(value):
        raise IngressError("bad_frame", TRACEPARENT_RULE, id=frame_id)
    return value


def _from_message(obj: dict[str, Any]) -> ClientFrame:
    frame_id = _optional_id(obj)
    if "traceparent" not in obj:
        return Message(obj.get("data"), frame_id)
    return Message(obj.get("data"), frame_id, _traceparent(obj, frame_id))


def _from_subscribe(obj: dict[str, Any]) -> ClientFrame:
    channel = _channel(obj, None)
    since = obj.get("since")
    if since is not None:
        try:
            parse_offset(since)
        except ValueError as exc:
            raise IngressError("bad_frame", str(exc), channel=channel) from None
    presence = obj.get("presence", False)
    if not isinstance(presence, bool):
        raise IngressError("bad_frame", "presence must be true or false", channel=channel)
    return Subscribe(channel, since, presence)


def _from_unsubscribe(obj: dict[str, Any]) -> ClientFrame:
    channel = obj.get("channel")
    if not isinstance(channel, str):
        raise IngressError("bad_frame", "unsubscribe needs a channel")
    return Unsubscribe(channel)


def _from_publish(obj: dict[str, Any]) -> ClientFrame:
    frame_id = _optional_id(obj)
    channel = _channel(obj, frame_id)
    event = obj.get("event", "message")
    if not is_event_name(event):
        raise IngressError("bad_frame", EVENT_RULE, id=frame_id)
    return Publish(channel, obj.get("data"), frame_id, event, _traceparent(obj, frame_id))


def _read_id(obj: dict[str, Any]) -> str:
    frame_id = obj.get("id")
    if not is_message_id(frame_id):
        raise IngressError("bad_frame", f"a read needs an id: {ID_RULE}")
    return frame_id


def _from_history(obj: dict[str, Any]) -> ClientFrame:
    frame_id = _read_id(obj)
    channel = _channel(obj, frame_id)
    since = obj.get("since")
    if since is not None:
        try:
            parse_offset(since)
        except ValueError as exc:
            raise IngressError("bad_frame", str(exc), id=frame_id) from None
    limit = obj.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise IngressError(
            "bad_frame", f"limit must be a whole number from 1, got {str(limit)[:20]!r}", id=frame_id
        )
    reverse = obj.get("reverse")
    if reverse is not None and not isinstance(reverse, bool):
        raise IngressError("bad_frame", "reverse must be true or false", id=frame_id)
    return HistoryRequest(frame_id, channel, limit, since, bool(reverse))


def _from_presence(obj: dict[str, Any]) -> ClientFrame:
    frame_id = _read_id(obj)
    return PresenceRequest(frame_id, _channel(obj, frame_id))


def _from_join(obj: dict[str, Any]) -> ClientFrame:
    frame_id = _optional_id(obj)
    channel = _channel(obj, frame_id)
    return PresenceJoin(channel, obj.get("info"), _key(obj, frame_id), frame_id)


def _from_leave(obj: dict[str, Any]) -> ClientFrame:
    frame_id = _optional_id(obj)
    channel = _channel(obj, frame_id)
    return PresenceLeave(channel, _key(obj, frame_id), frame_id)


def _from_refresh(obj: dict[str, Any]) -> ClientFrame:
    frame_id = _optional_id(obj)
    token = obj.get("token")
    if not isinstance(token, str):
        raise IngressError("bad_frame", "refresh needs a token (a string)", id=frame_id)
    return Refresh(frame_id, token)


_CLIENT_READERS: dict[str, Callable[[dict[str, Any]], ClientFrame]] = {
    "ping": _from_ping,
    "pong": _from_pong,
    "message": _from_message,
    "subscribe": _from_subscribe,
    "unsubscribe": _from_unsubscribe,
    "publish": _from_publish,
    "history": _from_history,
    "presence": _from_presence,
    "presence_join": _from_join,
    "presence_leave": _from_leave,
    "refresh": _from_refresh,
}

#: The type names a client may send.
CLIENT_FRAME_TYPES: Final = frozenset(_CLIENT_READERS)


def decode_client_frame(text: str) -> ClientFrame:
    """What a frame a client sent means, checked strictly; :class:`~pyrt.wire.ingress.IngressError`
    when it must be refused (the connection stays open)."""
    try:
        obj = loads(text)
    except IngressError as exc:
        value = exc.value
        frame_id = _id_of(value) if isinstance(value, dict) else None
        if frame_id is not None and not _printable(frame_id):
            frame_id = None  # an id that cannot be sent back names nothing
        raise IngressError(exc.code, str(exc), value, id=frame_id) from None
    return read_client_object(obj)


def read_client_object(obj: Any) -> ClientFrame:
    """What a client frame means once parsed (by either binding) into ``obj``, checked strictly
    against the protocol's grammar (:class:`~pyrt.wire.ingress.IngressError` otherwise)."""
    if not isinstance(obj, dict):
        raise IngressError("bad_frame", "a frame must be a JSON object")
    kind = obj.get("type")
    reader = _CLIENT_READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise IngressError("unknown_type", f"unknown frame type {str(kind)[:40]!r}", id=_id_of(obj))
    return reader(obj)


def _printable(text: str) -> bool:
    try:
        check_text(text)
    except IngressError:
        return False
    return True


# What a refusal of a frame needs when the frame is not read whole: a large frame is read only
# up to its id, where pyrt writes it (the refusal of another client's large frame names no id).
_PEEK_MAX: Final = 8192


def peek(text: str) -> tuple[str | None, str | None, str | None]:
    """``(type, id, channel)`` of a frame that is refused before it is read (over the rate),
    each ``None`` when it cannot be had cheaply: frames over 8 KiB are read only up to their id."""
    if len(text) > _PEEK_MAX:
        return _peek_head(text[:_PEEK_MAX])
    try:
        obj = loads(text)
    except IngressError as exc:
        obj = exc.value
    if not isinstance(obj, dict):
        return None, None, None
    kind = obj.get("type")
    kind = kind if isinstance(kind, str) else None
    channel = obj.get("channel") if kind in ("subscribe", "unsubscribe") else None
    return kind, _id_of(obj), channel if is_channel_name(channel) else None


def _peek_head(head: str) -> tuple[str | None, str | None, str | None]:
    """The ``type`` and ``id`` a frame starts with (``{"type":"publish","id":"x-1",...``)."""
    decoder = json.JSONDecoder()
    position = head.find("{")
    if position < 0:
        return None, None, None
    found: dict[str, Any] = {}
    position += 1
    for _ in range(2):  # the first two fields, when they are type and id
        try:
            key, position = decoder.raw_decode(head, _skip(head, position))
            position = _skip(head, position)
            if head[position : position + 1] != ":":
                break
            value, position = decoder.raw_decode(head, _skip(head, position + 1))
        except (ValueError, IndexError):
            break
        if key in ("type", "id"):
            found[key] = value
        position = _skip(head, position)
        if head[position : position + 1] != ",":
            break
        position += 1
    kind, frame_id = found.get("type"), found.get("id")
    return (kind if isinstance(kind, str) else None), (frame_id if is_message_id(frame_id) else None), None


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


# ----------------------------------------------------------------------------- the HTTP binding
#
# Over plain HTTP (docs/protocol.md, "The HTTP binding") the server's frames travel as the events
# of one text/event-stream response, each frame the data of an event of the default type; the end
# of the connection is an event of type ``close`` whose data is ``{"code":C,"reason":R}``. The
# client's frames travel in POST bodies, one per line, as in a batch.

HTTP_CLOSE_EVENT: Final = "close"


def encode_http_close(code: int, reason: str) -> str:
    """The data of the ``close`` event that ends a connection over the HTTP binding."""
    return '{"code":' + str(int(code)) + ',"reason":' + _string(reason) + "}"


def decode_http_close(data: str) -> tuple[int, str]:
    """``(code, reason)`` of a ``close`` event (1006 and the text when it cannot be read)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return 1006, data[:123]
    code = obj.get("code") if isinstance(obj, dict) else None
    reason = obj.get("reason") if isinstance(obj, dict) else None
    if isinstance(code, bool) or not isinstance(code, int):
        code = 1006
    return code, reason if isinstance(reason, str) else ""


def http_event(frame: str) -> bytes:
    """One frame as an event of the HTTP binding's stream (frames are one line: one ``data:``)."""
    return b"data: " + frame.encode("utf-8") + b"\n\n"


def http_close_event(code: int, reason: str) -> bytes:
    """The ``close`` event that ends a connection over the HTTP binding."""
    return b"event: close\ndata: " + encode_http_close(code, reason).encode("utf-8") + b"\n\n"


def split_posted(body: str) -> list[str]:
    """The frames of a POST body of the HTTP binding: one per line, empty lines skipped."""
    return [line for line in body.split(BATCH_SEPARATOR) if line]
