"""Wire protocols: how messages, acks, heartbeats and subscriptions become frames and back.

Three are built in; pass one by name or as an instance (``protocol=`` of a client):

- ``"pyrt"`` (default): the protocol of ``serve.py``, documented in ``docs/protocol.md`` — acks,
  server-side dedup, channels with offsets, ping/pong. Where ``msgpack`` is installed it is
  :class:`PyrtBinaryProtocol`, which offers the binary binding (``pyrt.v1.msgpack``: bytes and
  NumPy arrays as data) first and the JSON one after; elsewhere :class:`PyrtProtocol`, JSON only
  (also by name: ``"pyrt-json"``).
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

import copy
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from pyrt.errors import EncodeError, UnsupportedByProtocol
from pyrt.wire import codec
from pyrt.wire.codec import json_text as _json
from pyrt.wire.frames import (
    Ack,
    BadFrame,
    HistoryRequest,
    Inbound,
    Message,
    Ping,
    Pong,
    PresenceJoin,
    PresenceLeave,
    PresenceRequest,
    Publication,
    Publish,
    Refresh,
    Subscribe,
    Unsubscribe,
    Welcome,
)
from pyrt.wire.names import is_traceparent
from pyrt.wire.types import AckId, Frame

__all__ = [
    "JsonAckProtocol",
    "PyrtBinaryProtocol",
    "PyrtProtocol",
    "RawProtocol",
    "WireProtocol",
    "get_protocol",
    "with_traceparent",
]


def _raw_frame(data: Any) -> Frame:
    if isinstance(data, str):
        return data
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    return _json(data)


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
    #: The server's first frame is a ``welcome``: the connection is up when it arrives, not when
    #: the socket opens (a socket can open and then pass nothing: a proxy holding the frames).
    welcomes: ClassVar[bool] = False
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

    def decode_batch(self, frame: Frame) -> list[Inbound] | None:
        """What a text message holding a line break (or a binary message) means, when it holds
        several frames (a batch); ``None`` when it is one frame (then :meth:`decode` reads it)."""
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
    """The pyrt protocol (version 1) of ``docs/protocol.md``, written and read by the one codec
    (:mod:`pyrt.wire.codec`)."""

    name = "pyrt"
    subprotocol = "pyrt.v1"
    #: ``pyrt.v1.batch``: the server may send several frames in one message, one per line
    #: (docs/protocol.md, "Batched frames"); servers that do not know it pick ``pyrt.v1``.
    subprotocols: ClassVar[tuple[str, ...]] = ("pyrt.v1.batch", "pyrt.v1")
    acks = True
    channels = True
    flow_control = True
    welcomes = True

    #: Where the ``traceparent`` of each ``message`` and ``publish`` frame comes from (called as
    #: it is encoded, in the sender's context), ``None``: frames carry none. Set by
    #: :func:`with_traceparent` (the ``traceparent`` option of a client).
    traceparent: Callable[[], str | None] | None = None

    def encode(self, data: Any) -> Frame:
        if isinstance(data, bytes | bytearray | memoryview):
            raise EncodeError(_JSON_ONLY)
        source = self.traceparent
        return codec.encode_message(data, None, None if source is None else source())

    def encode_acked(self, ack_id: AckId, data: Any) -> Frame:
        if isinstance(data, bytes | bytearray | memoryview):
            self.encode(data)  # raises the same clear error
        source = self.traceparent
        return codec.encode_message(data, ack_id, None if source is None else source())

    def encode_ping(self, seq: int) -> Frame:
        return codec.encode(Ping(seq))

    def pong_matcher(self) -> Callable[[Frame], bool] | None:
        return None  # pongs are decoded frames

    def encode_pong(self, t: Any) -> Frame:
        return codec.encode(Pong(t))

    def encode_subscribe(self, channel: str, since: str | None, presence: bool = False) -> Frame:
        return codec.encode(Subscribe(channel, since, presence))

    def encode_unsubscribe(self, channel: str) -> Frame:
        return codec.encode(Unsubscribe(channel))

    def encode_publish(self, ack_id: AckId, channel: str, data: Any, event: str | None) -> Frame:
        source = self.traceparent
        return codec.encode(Publish(channel, data, ack_id, event, None if source is None else source()))

    def encode_refresh(self, ack_id: AckId, token: str) -> Frame:
        return codec.encode(Refresh(ack_id, token))

    def encode_history(
        self, ack_id: AckId, channel: str, limit: int | None, since: str | None, reverse: bool
    ) -> Frame:
        return codec.encode(HistoryRequest(ack_id, channel, limit, since, reverse))

    def encode_presence(self, ack_id: AckId, channel: str) -> Frame:
        return codec.encode(PresenceRequest(ack_id, channel))

    def encode_join(self, ack_id: AckId, channel: str, info: Any, key: str) -> Frame:
        return codec.encode(PresenceJoin(channel, info, key, ack_id))

    def encode_leave(self, ack_id: AckId, channel: str, key: str) -> Frame:
        return codec.encode(PresenceLeave(channel, key, ack_id))

    def decode(self, frame: Frame) -> Inbound:
        return codec.decode_server_frame(frame)

    def decode_batch(self, frame: Frame) -> list[Inbound] | None:
        return codec.decode_batch(frame) if isinstance(frame, str) else None


#: The binary binding's subprotocol (``pyrt.wire.binary.SUBPROTOCOL``, spelled here so that this
#: module does not import it: a client loads the binding when it first speaks it).
BINARY_SUBPROTOCOL = "pyrt.v1.msgpack"
_binary_module: Any = None


def _wire() -> Any:
    """:mod:`pyrt.wire.binary`, imported on first use (it and ``msgpack`` cost start-up)."""
    global _binary_module
    if _binary_module is None:
        from pyrt.wire import binary

        _binary_module = binary
    return _binary_module


def binary_available() -> bool:
    """Whether ``msgpack`` can be imported here (checked without importing it)."""
    return "msgpack" in sys.modules or importlib.util.find_spec("msgpack") is not None


class PyrtBinaryProtocol(PyrtProtocol):
    """The pyrt protocol with its binary binding (docs/protocol.md, "The binary binding"): offers
    ``pyrt.v1.msgpack`` first, then the JSON subprotocols, and speaks what the server chose.

    The server's frames arrive as MessagePack on the binary binding (its ``welcome`` first: that
    is how the client knows the binding). The client writes a frame as MessagePack only when its
    data needs it (bytes, arrays) and as JSON text otherwise: a server reads text frames on both
    bindings, so what is queued stays valid across a reconnect to a server, or a fallback to a
    transport (the HTTP binding), that speaks only JSON. After a JSON ``welcome``, data that needs
    the binary binding is refused with :class:`EncodeError` before anything is queued (a frame
    holding bytes that was queued before is refused by such a server with an ``error``).
    ``msgpack`` is imported when the first binary frame is written or read.

    ``encoder``: turns a value neither binding carries (a ``datetime``, a ``Decimal``, a
    dataclass, a pydantic model) into one that it carries (``str``, ``dict``...); called by
    either binding. ``decoder``: called with the data of every received message and publication
    (and acks' data), returns what is delivered (e.g. a model built from a dict).
    """

    subprotocols: ClassVar[tuple[str, ...]] = (BINARY_SUBPROTOCOL, "pyrt.v1.batch", "pyrt.v1")

    def __init__(
        self,
        encoder: Callable[[Any], Any] | None = None,
        decoder: Callable[[Any], Any] | None = None,
    ) -> None:
        #: The binding of the current (or last) connection: ``True`` binary, ``False`` JSON,
        #: ``None`` before the first ``welcome``.
        self.binary: bool | None = None
        self.encoder = encoder
        self.decoder = decoder

    def _data(self, make_binary: Callable[[], bytes], make_json: Callable[[], str]) -> Frame:
        try:
            return make_json()
        except EncodeError:
            if self.binary is False:
                raise EncodeError(_JSON_ONLY + " (this server chose the JSON binding)") from None
            return make_binary()

    def _json_value(self, data: Any) -> Any:
        encoder = self.encoder
        if encoder is None or data is None or type(data) in (str, int, float, bool):
            return data
        return _json_encoded(data, encoder)

    def encode(self, data: Any) -> Frame:
        source = self.traceparent
        trace = None if source is None else source()
        return self._data(
            lambda: _wire().encode_message(data, None, self.encoder, trace),
            lambda: codec.encode_message(self._json_value(data), None, trace),
        )

    def encode_acked(self, ack_id: AckId, data: Any) -> Frame:
        source = self.traceparent
        trace = None if source is None else source()
        return self._data(
            lambda: _wire().encode_message(data, ack_id, self.encoder, trace),
            lambda: codec.encode_message(self._json_value(data), ack_id, trace),
        )

    def _frame(self, frame: Any) -> Frame:
        return codec.encode(frame)  # control frames hold nothing JSON cannot carry

    def encode_ping(self, seq: int) -> Frame:
        return self._frame(Ping(seq))

    def encode_pong(self, t: Any) -> Frame:
        return self._frame(Pong(t))

    def encode_subscribe(self, channel: str, since: str | None, presence: bool = False) -> Frame:
        return self._frame(Subscribe(channel, since, presence))

    def encode_unsubscribe(self, channel: str) -> Frame:
        return self._frame(Unsubscribe(channel))

    def encode_publish(self, ack_id: AckId, channel: str, data: Any, event: str | None) -> Frame:
        source = self.traceparent
        trace = None if source is None else source()
        return self._data(
            lambda: _wire().encode(Publish(channel, data, ack_id, event, trace), self.encoder),
            lambda: codec.encode(Publish(channel, self._json_value(data), ack_id, event, trace)),
        )

    def encode_refresh(self, ack_id: AckId, token: str) -> Frame:
        return self._frame(Refresh(ack_id, token))

    def encode_history(
        self, ack_id: AckId, channel: str, limit: int | None, since: str | None, reverse: bool
    ) -> Frame:
        return self._frame(HistoryRequest(ack_id, channel, limit, since, reverse))

    def encode_presence(self, ack_id: AckId, channel: str) -> Frame:
        return self._frame(PresenceRequest(ack_id, channel))

    def encode_join(self, ack_id: AckId, channel: str, info: Any, key: str) -> Frame:
        return self._data(
            lambda: _wire().encode(PresenceJoin(channel, info, key, ack_id), self.encoder),
            lambda: codec.encode(PresenceJoin(channel, self._json_value(info), key, ack_id)),
        )

    def encode_leave(self, ack_id: AckId, channel: str, key: str) -> Frame:
        return self._frame(PresenceLeave(channel, key, ack_id))

    def decode(self, frame: Frame) -> Inbound:
        if type(frame) is bytes:
            events = _wire().decode_batch(frame)
            return self._decoded(events[0], True) if len(events) == 1 else BadFrame("a batch", frame)
        return self._decoded(codec.decode_server_frame(frame), False)

    def decode_batch(self, frame: Frame) -> list[Inbound] | None:
        """For a binary message, always its frames (one or several: read once)."""
        if type(frame) is bytes:
            return [self._decoded(event, True) for event in _wire().decode_batch(frame)]
        assert isinstance(frame, str)
        events = codec.decode_batch(frame)
        if events is None:
            return None
        return [self._decoded(event, False) for event in events]

    def _decoded(self, event: Inbound, binary_frame: bool) -> Inbound:
        kind = type(event)
        if kind is Welcome:
            self.binary = binary_frame
        decoder = self.decoder
        if decoder is None:
            return event
        if kind is Message or kind is Publication or (kind is Ack and event.data is not None):  # type: ignore[union-attr]
            return replace(event, data=decoder(event.data))  # type: ignore[union-attr]
        return event


_JSON_ONLY = (
    "bytes and arrays travel only on the binary binding (subprotocol pyrt.v1.msgpack: install "
    "msgpack, use protocol='pyrt', and a server that speaks it, such as serve.py with the "
    "server extra); on the JSON binding send str or JSON data, or encode them yourself (base64)"
)


def _json_encoded(data: Any, encoder: Callable[[Any], Any]) -> Any:
    """``data`` with every value JSON does not know replaced by ``encoder``'s answer."""
    import json

    try:
        return json.loads(json.dumps(data, default=encoder, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"cannot send a {type(data).__name__} as JSON: {exc}") from exc


def _pyrt() -> WireProtocol:
    """The default ``"pyrt"`` protocol: with the binary binding where ``msgpack`` is installed."""
    return PyrtBinaryProtocol() if binary_available() else PyrtProtocol()


_BY_NAME: dict[str, Callable[[], WireProtocol]] = {
    "pyrt": _pyrt,
    "pyrt-json": PyrtProtocol,
    "pyrt-msgpack": PyrtBinaryProtocol,
    "raw": RawProtocol,
    "json-ack": JsonAckProtocol,
}


def get_protocol(protocol: str | WireProtocol) -> WireProtocol:
    """A protocol instance from a name (``"pyrt"``, ``"pyrt-json"``, ``"pyrt-msgpack"``, ``"raw"``,
    ``"json-ack"``) or an instance."""
    if isinstance(protocol, WireProtocol):
        return protocol
    try:
        return _BY_NAME[protocol]()
    except KeyError:
        raise ValueError(
            f"unknown protocol {protocol!r}; choose one of {sorted(_BY_NAME)} or pass a WireProtocol instance"
        ) from None


def with_traceparent(protocol: WireProtocol, source: Callable[[], str | None]) -> WireProtocol:
    """A copy of ``protocol`` whose ``message`` and ``publish`` frames carry the ``traceparent``
    ``source`` returns as each is encoded (a value that is not a W3C ``traceparent``, or ``None``,
    is left out: the frame goes as it would without tracing). Only the pyrt protocols have the
    field (:class:`ValueError` for others)."""
    if not isinstance(protocol, PyrtProtocol):
        raise ValueError(f"traceparent needs the pyrt protocol; {protocol.name!r} frames have no such field")

    def checked() -> str | None:
        value = source()
        return value if is_traceparent(value) else None

    traced = copy.copy(protocol)
    traced.traceparent = checked
    return traced
