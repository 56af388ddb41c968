"""Wire protocols: how messages, acks, heartbeats and subscriptions become frames and back.

Three are built in; pass one by name or as an instance (``protocol=`` of a client):

- ``"pyrt"`` (:class:`PyrtProtocol`, default): the JSON protocol of ``serve.py``, documented in
  ``docs/protocol.md`` — acks, server-side dedup, channels with offsets, ping/pong.
- ``"raw"`` (:class:`RawProtocol`): works with any WebSocket server. Text and binary frames go
  out as they are (dicts and lists as JSON text) and arrive as ``str`` / ``bytes``. Heartbeat
  with the texts ``"ping"``/``"pong"`` (configurable). No acks, no channels.
- ``"json-ack"`` (:class:`JsonAckProtocol`): raw mode plus the common ack shape: an acked message
  goes out as ``{"id": n, "data": ...}`` and is answered by
  ``{"type": "ack", "messageId": n, "success": true|false, "error": ...}``.

Subclass :class:`WireProtocol` for another server. Encoders raise
:class:`~pyrt.errors.EncodeError` for data they cannot carry, before anything is queued.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pyrt.engine.presence import Member, read_members
from pyrt.engine.subscriptions import Publication
from pyrt.errors import EncodeError, UnsupportedByProtocol
from pyrt.wire.limits import ServerLimits
from pyrt.wire.types import AckId, Frame

__all__ = [
    "Ack",
    "BadFrame",
    "ErrorFrame",
    "Inbound",
    "JsonAckProtocol",
    "Message",
    "Ping",
    "Pong",
    "PresenceDiff",
    "PyrtProtocol",
    "RawProtocol",
    "Subscribed",
    "Unsubscribed",
    "Welcome",
    "WireProtocol",
    "get_protocol",
]


@dataclass(frozen=True, slots=True)
class Message:
    """An application message for ``on_message``."""

    data: Any


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a message or publish that wanted an ack. A failed one (``ok`` false) may
    carry a ``code``: a retryable one (:mod:`pyrt.wire.refusals`) asks to send it again, after
    ``retry_after`` seconds when given."""

    id: Any
    ok: bool
    data: Any = None
    error: Any = None
    code: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """The server probes liveness; answer with a pong carrying ``t``."""

    t: Any = None


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to our ping; ``t`` is the ping's sequence number when the protocol echoes it."""

    t: Any = None


@dataclass(frozen=True, slots=True)
class Subscribed:
    channel: str
    offset: str | None
    recovered: bool = True
    #: The channel's members and their version, when the subscription asked for presence.
    presence: tuple[list[Member], str] | None = None


@dataclass(frozen=True, slots=True)
class PresenceDiff:
    """Members that joined (or changed) and left a channel's presence, at ``version``."""

    channel: str
    version: str
    joins: list[Member]
    leaves: list[Member]


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    channel: str


@dataclass(frozen=True, slots=True)
class Welcome:
    session: str | None = None
    server: str | None = None
    heartbeat: float | None = None
    limits: ServerLimits | None = None  # what the connection must respect, when advertised
    ttl: float | None = None  # seconds the connection's token lasts (None: no token, or no expiry)


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """The server refused a frame; ``id`` names the message when it had one, ``channel`` the
    channel of a refused (or revoked) subscription; ``retry_after`` (seconds) comes with a
    transient refusal."""

    code: str
    message: str
    id: Any = None
    retry_after: float | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame this protocol cannot read; reported through ``on_error``, never delivered."""

    reason: str
    frame: Frame


Inbound = (
    Message
    | Ack
    | Ping
    | Pong
    | Subscribed
    | Unsubscribed
    | Publication
    | Welcome
    | ErrorFrame
    | BadFrame
    | PresenceDiff
)


# One encoder for every frame: json.dumps with options builds a new JSONEncoder per call.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _json(value: Any) -> str:
    try:
        return _encode(value)
    except (TypeError, ValueError) as exc:
        raise EncodeError(
            f"cannot send a {type(value).__name__} as JSON: {exc}; "
            "send str, bytes, or JSON-serialisable dict/list/number/bool/None"
        ) from exc


def _raw_frame(data: Any) -> Frame:
    if isinstance(data, str):
        return data
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    return _json(data)


_INVALID_JSON = "invalid JSON"


class WireProtocol:
    """Base class of protocols. Override what your server speaks.

    ``acks``/``channels`` say which client features work; ``subprotocols`` are offered in the
    WebSocket handshake, preferred first (``subprotocol``: the one every server of this protocol
    knows); ``raw_inbound`` means :meth:`decode` is the identity for everything but the heartbeat
    pong, which lets the engine skip it on the hot path; ``flow_control`` means the server
    answers pings in order, may advertise its limits in a welcome and refuses with
    ``rate_limited`` (the client paces by default, see :mod:`pyrt.engine.pacing`).
    """

    name: ClassVar[str] = "base"
    subprotocol: ClassVar[str | None] = None
    subprotocols: ClassVar[tuple[str, ...]] = ()
    acks: ClassVar[bool] = False
    channels: ClassVar[bool] = False
    flow_control: ClassVar[bool] = False
    numeric_ids: ClassVar[bool] = False
    raw_inbound: ClassVar[bool] = False

    def encode(self, data: Any) -> Frame:
        """A fire-and-forget message."""
        return _raw_frame(data)

    def encode_acked(self, ack_id: AckId, data: Any) -> Frame:
        """A message that wants an ack with id ``ack_id``."""
        raise UnsupportedByProtocol(
            f"the {self.name!r} protocol has no acknowledgements; use protocol='pyrt' or "
            "'json-ack', or send() without an ack"
        )

    def encode_ping(self, seq: int) -> Frame:
        return "ping"

    def is_pong(self, frame: Frame) -> bool:
        """Default pong recognition for protocols without a pong frame of their own."""
        return frame == "pong"

    def pong_matcher(self) -> Callable[[Frame], bool] | None:
        """Checked on every inbound frame before :meth:`decode` while a heartbeat runs; None
        when pongs are decoded frames."""
        return self.is_pong

    def encode_pong(self, t: Any) -> Frame:
        return "pong"

    def encode_subscribe(self, channel: str, since: str | None, presence: bool = False) -> Frame:
        raise UnsupportedByProtocol(self._no_channels())

    def encode_unsubscribe(self, channel: str) -> Frame:
        raise UnsupportedByProtocol(self._no_channels())

    def encode_publish(self, ack_id: AckId, channel: str, data: Any, event: str | None) -> Frame:
        raise UnsupportedByProtocol(self._no_channels())

    def encode_refresh(self, ack_id: AckId, token: str) -> Frame:
        """A new token for the open connection (only protocols whose server tells a ``ttl``)."""
        raise UnsupportedByProtocol(f"the {self.name!r} protocol cannot refresh a token in place")

    def encode_history(
        self, ack_id: AckId, channel: str, limit: int | None, since: str | None, reverse: bool
    ) -> Frame:
        """A request for a page of ``channel``'s history, answered by an ack."""
        raise UnsupportedByProtocol(self._no_channels())

    def encode_presence(self, ack_id: AckId, channel: str) -> Frame:
        """A request for ``channel``'s members, answered by an ack."""
        raise UnsupportedByProtocol(self._no_channels())

    def encode_join(self, ack_id: AckId, channel: str, info: Any, key: str) -> Frame:
        """Join ``channel``'s presence with ``info`` as the member named by ``key``."""
        raise UnsupportedByProtocol(self._no_channels())

    def encode_leave(self, ack_id: AckId, channel: str, key: str) -> Frame:
        raise UnsupportedByProtocol(self._no_channels())

    def decode(self, frame: Frame) -> Inbound:
        """What an inbound frame means."""
        return Message(frame)

    def decode_batch(self, frame: str) -> list[Inbound] | None:
        """What a text message holding a line break means, when it holds several frames (a batch);
        ``None`` when it is one frame (then :meth:`decode` reads it)."""
        return None

    def _no_channels(self) -> str:
        return (
            f"the {self.name!r} protocol has no channels; use protocol='pyrt' with a pyrt server "
            "for subscribe/publish"
        )


class RawProtocol(WireProtocol):
    """Frames as they are: any WebSocket server. Heartbeat texts ``"ping"``/``"pong"``."""

    name = "raw"
    raw_inbound = True


class JsonAckProtocol(WireProtocol):
    """Raw frames plus acks in the common ``{"id": n, "data": ...}`` / ``messageId`` shape."""

    name = "json-ack"
    acks = True
    numeric_ids = True

    def encode_acked(self, ack_id: AckId, data: Any) -> Frame:
        return '{"id":' + _json(ack_id) + ',"data":' + _json(data) + "}"

    def decode(self, frame: Frame) -> Inbound:
        if isinstance(frame, str) and '"messageId"' in frame:
            try:
                obj = json.loads(frame)
            except ValueError:
                return Message(frame)
            if isinstance(obj, dict) and obj.get("type") == "ack" and "messageId" in obj:
                return Ack(
                    id=obj["messageId"],
                    ok=bool(obj.get("success", True)),
                    data=obj.get("data"),
                    error=obj.get("error"),
                )
        return Message(frame)


class PyrtProtocol(WireProtocol):
    """The pyrt protocol (version 1) of ``docs/protocol.md``: JSON objects with a ``type``."""

    name = "pyrt"
    subprotocol = "pyrt.v1"
    #: ``pyrt.v1.batch``: the server may send several frames in one message, one per line
    #: (docs/protocol.md, "Batched frames"); servers that do not know it pick ``pyrt.v1``.
    subprotocols = ("pyrt.v1.batch", "pyrt.v1")
    acks = True
    channels = True
    flow_control = True

    def encode(self, data: Any) -> Frame:
        if isinstance(data, bytes | bytearray | memoryview):
            raise EncodeError(
                "the pyrt protocol carries JSON only: encode binary data yourself (e.g. base64) "
                "or use protocol='raw'"
            )
        return '{"type":"message","data":' + _json(data) + "}"

    def encode_acked(self, ack_id: AckId, data: Any) -> Frame:
        if isinstance(data, bytes | bytearray | memoryview):
            self.encode(data)  # raises the same clear error
        return '{"type":"message","id":' + _json(ack_id) + ',"data":' + _json(data) + "}"

    def encode_ping(self, seq: int) -> Frame:
        return '{"type":"ping","t":' + str(seq) + "}"

    def pong_matcher(self) -> Callable[[Frame], bool] | None:
        return None  # pongs are decoded frames

    def encode_pong(self, t: Any) -> Frame:
        return '{"type":"pong","t":' + _json(t) + "}"

    def encode_subscribe(self, channel: str, since: str | None, presence: bool = False) -> Frame:
        frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "since": since}
        if presence:
            frame["presence"] = True
        return _json(frame)

    def encode_unsubscribe(self, channel: str) -> Frame:
        return _json({"type": "unsubscribe", "channel": channel})

    def encode_publish(self, ack_id: AckId, channel: str, data: Any, event: str | None) -> Frame:
        frame: dict[str, Any] = {"type": "publish", "id": ack_id, "channel": channel, "data": data}
        if event is not None:
            frame["event"] = event
        return _json(frame)

    def encode_refresh(self, ack_id: AckId, token: str) -> Frame:
        return _json({"type": "refresh", "id": ack_id, "token": token})

    def encode_history(
        self, ack_id: AckId, channel: str, limit: int | None, since: str | None, reverse: bool
    ) -> Frame:
        frame: dict[str, Any] = {"type": "history", "id": ack_id, "channel": channel}
        if limit is not None:
            frame["limit"] = limit
        if since is not None:
            frame["since"] = since
        if reverse:
            frame["reverse"] = True
        return _json(frame)

    def encode_presence(self, ack_id: AckId, channel: str) -> Frame:
        return _json({"type": "presence", "id": ack_id, "channel": channel})

    def encode_join(self, ack_id: AckId, channel: str, info: Any, key: str) -> Frame:
        return _json({"type": "presence_join", "id": ack_id, "channel": channel, "info": info, "key": key})

    def encode_leave(self, ack_id: AckId, channel: str, key: str) -> Frame:
        return _json({"type": "presence_leave", "id": ack_id, "channel": channel, "key": key})

    def decode(self, frame: Frame) -> Inbound:
        if not isinstance(frame, str):
            return BadFrame("binary frame on a JSON protocol", frame)
        try:
            obj = json.loads(frame)
        except ValueError:
            return BadFrame(_INVALID_JSON, frame)
        if not isinstance(obj, dict):
            return BadFrame("not a JSON object", frame)
        kind = obj.get("type")
        get = obj.get
        if kind == "message":
            return Message(get("data"))
        if kind == "publication":
            return Publication(
                channel=str(get("channel", "")),
                data=get("data"),
                offset=get("offset"),
                event=get("event") or "message",
            )
        if kind == "ack":
            ok = bool(get("ok"))
            if ok:
                return Ack(id=get("id"), ok=True, data=get("data"))
            code, retry_after = _code(get("code")), _seconds(get("retry_after"))
            return Ack(get("id"), False, get("data"), get("error"), code, retry_after)
        if kind == "pong":
            return Pong(get("t"))
        if kind == "ping":
            return Ping(get("t"))
        if kind == "subscribed":
            channel = str(get("channel", ""))
            presence = get("presence")
            snapshot = None
            if isinstance(presence, dict):
                try:
                    snapshot = (read_members(channel, presence.get("members")), str(presence.get("version")))
                except ValueError as exc:
                    return BadFrame(str(exc), frame)
            return Subscribed(channel, get("offset"), bool(get("recovered", True)), snapshot)
        if kind == "presence_diff":
            channel = str(get("channel", ""))
            try:
                joins, leaves = read_members(channel, get("joins")), read_members(channel, get("leaves"))
            except ValueError as exc:
                return BadFrame(str(exc), frame)
            return PresenceDiff(channel, str(get("version")), joins, leaves)
        if kind == "unsubscribed":
            return Unsubscribed(str(get("channel", "")))
        if kind == "welcome":
            limits = ServerLimits.from_wire(get("limits"))
            ttl = _seconds(get("ttl"), most=math.inf)  # a token's lifetime is not capped
            return Welcome(get("session"), get("server"), get("heartbeat"), ttl=ttl, limits=limits)
        if kind == "error":
            named = get("channel")
            return ErrorFrame(
                str(get("code")),
                str(get("message", "")),
                get("id"),
                _seconds(get("retry_after")),
                named if isinstance(named, str) else None,
            )
        return BadFrame(f"unknown frame type {kind!r}", frame)

    def decode_batch(self, frame: str) -> list[Inbound] | None:
        """A batch is compact JSON frames separated by ``\\n``. A message whose first line is
        not a JSON value on its own is one frame with line breaks in it (a server that
        pretty-prints): ``None``, and :meth:`decode` reads it whole."""
        lines = [line for line in frame.split("\n") if line]
        if len(lines) < 2:
            return None
        first = self.decode(lines[0])
        if type(first) is BadFrame and first.reason == _INVALID_JSON:
            return None
        return [first, *(self.decode(line) for line in lines[1:])]


def _code(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _seconds(value: Any, most: float = 3600.0) -> float | None:
    """A duration a server sent: a non-negative number (at most ``most``), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return None
    return min(float(value), most)


_BY_NAME: dict[str, type[WireProtocol]] = {
    "pyrt": PyrtProtocol,
    "raw": RawProtocol,
    "json-ack": JsonAckProtocol,
}


def get_protocol(protocol: str | WireProtocol) -> WireProtocol:
    """A protocol instance from a name (``"pyrt"``, ``"raw"``, ``"json-ack"``) or an instance."""
    if isinstance(protocol, WireProtocol):
        return protocol
    try:
        return _BY_NAME[protocol]()
    except KeyError:
        raise ValueError(
            f"unknown protocol {protocol!r}; choose one of {sorted(_BY_NAME)} or pass a WireProtocol instance"
        ) from None
