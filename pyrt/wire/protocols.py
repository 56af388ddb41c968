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
from collections.abc import Callable
from typing import Any, ClassVar

from pyrt.errors import EncodeError, UnsupportedByProtocol
from pyrt.wire import codec
from pyrt.wire.codec import json_text as _json
from pyrt.wire.frames import (
    Ack,
    HistoryRequest,
    Inbound,
    Message,
    Ping,
    Pong,
    PresenceJoin,
    PresenceLeave,
    PresenceRequest,
    Publish,
    Refresh,
    Subscribe,
    Unsubscribe,
)
from pyrt.wire.types import AckId, Frame

__all__ = [
    "JsonAckProtocol",
    "PyrtProtocol",
    "RawProtocol",
    "WireProtocol",
    "get_protocol",
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
    """The pyrt protocol (version 1) of ``docs/protocol.md``, written and read by the one codec
    (:mod:`pyrt.wire.codec`)."""

    name = "pyrt"
    subprotocol = "pyrt.v1"
    #: ``pyrt.v1.batch``: the server may send several frames in one message, one per line
    #: (docs/protocol.md, "Batched frames"); servers that do not know it pick ``pyrt.v1``.
    subprotocols = ("pyrt.v1.batch", "pyrt.v1")
    acks = True
    channels = True
    flow_control = True
    welcomes = True

    def encode(self, data: Any) -> Frame:
        if isinstance(data, bytes | bytearray | memoryview):
            raise EncodeError(
                "the pyrt protocol carries JSON only: encode binary data yourself (e.g. base64) "
                "or use protocol='raw'"
            )
        return codec.encode_message(data)

    def encode_acked(self, ack_id: AckId, data: Any) -> Frame:
        if isinstance(data, bytes | bytearray | memoryview):
            self.encode(data)  # raises the same clear error
        return codec.encode_message(data, ack_id)

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
        return codec.encode(Publish(channel, data, ack_id, event))

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

    def decode_batch(self, frame: str) -> list[Inbound] | None:
        return codec.decode_batch(frame)


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
