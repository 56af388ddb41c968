"""permessage-deflate for ``serve.py``'s WebSockets: messages that may not inflate without bound,
and fan-out frames compressed once.

- **Capped inflating.** A message may inflate to :data:`INFLATE_FLOOR` or to ``ratio`` times its
  compressed size, whichever is larger: inflating stops there and the connection is closed with
  1009 (a 1 KB frame inflating to 1 MiB costs the server a thousand times what it cost to send).
- **Shared frames.** Without context takeover, compressing a message gives the same bytes for
  every connection with the same settings: a text written to many connections in one turn of the
  event loop (a fan-out) is compressed once and the frame shared (:class:`SharedFrames`,
  :func:`encode_texts`).

Everything here is ``websockets``' public extension API (``ServerPerMessageDeflateFactory``,
``PerMessageDeflate``, ``Frame.serialize``); the uvicorn protocol that negotiates it lives in
:mod:`pyrt.server.uvicorn_private`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.exceptions import PayloadTooBig
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.frames import CONT, CTRL_OPCODES, Frame, Opcode
from websockets.protocol import Protocol
from websockets.typing import ExtensionParameter

__all__ = [
    "INFLATE_FLOOR",
    "CappedDeflate",
    "CappedDeflateFactory",
    "InflatesTooMuch",
    "SharedFrames",
    "deflate_factory",
    "encode_texts",
    "text_frame",
]

INFLATE_FLOOR = 16 * 1024  # what any compressed message may inflate to, whatever its ratio

#: The negotiated settings without context takeover: each message is compressed on its own, so an
#: idle connection holds no compressor or decompressor (about 40 KiB with them).
NO_CONTEXT: dict[str, Any] = {
    "server_no_context_takeover": True,
    "client_no_context_takeover": True,
    "server_max_window_bits": 12,
    "client_max_window_bits": 12,
    "compress_settings": {"memLevel": 5},
}


class InflatesTooMuch(PayloadTooBig):
    """A compressed message inflated beyond what its size allows (closed with 1009)."""

    def __init__(self, ratio: int) -> None:
        super().__init__(None, 0)
        self.ratio = ratio

    def __str__(self) -> str:
        return f"message inflates more than {self.ratio} times its compressed size"


class CappedDeflate(PerMessageDeflate):
    """permessage-deflate whose messages inflate to at most :data:`INFLATE_FLOOR` or ``ratio``
    times their compressed size (counted over the frames of a fragmented message): zlib is told
    to stop there, so a bomb costs the server no more than that."""

    ratio = 0
    _compressed = 0  # compressed bytes of the message being received
    _inflated = 0  # what they inflated to

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if self.ratio <= 0 or frame.opcode in CTRL_OPCODES:
            return super().decode(frame, max_size=max_size)
        if frame.opcode is CONT:
            if not self.decode_cont_data:
                return frame
        elif not frame.rsv1:
            return frame
        else:
            self._compressed = self._inflated = 0
        self._compressed += len(frame.data)
        # at least 1: zlib takes a limit of 0 as no limit at all
        allowed = max(1, max(INFLATE_FLOOR, self.ratio * self._compressed) - self._inflated)
        capped = max_size is None or allowed < max_size
        try:
            decoded = super().decode(frame, max_size=allowed if capped else max_size)
        except PayloadTooBig:
            if capped:
                raise InflatesTooMuch(self.ratio) from None
            raise
        self._inflated += len(decoded.data)
        return decoded


class CappedDeflateFactory(ServerPerMessageDeflateFactory):
    """:class:`ServerPerMessageDeflateFactory` negotiating :class:`CappedDeflate`."""

    def __init__(self, ratio: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ratio = ratio

    def process_request_params(
        self, params: Any, accepted_extensions: Any
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        assert isinstance(negotiated, PerMessageDeflate)
        extension = CappedDeflate(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        extension.ratio = self.ratio
        return response, extension


class SharedFrames:
    """Frames compressed during one turn of the event loop, by window size and text: a fan-out
    compresses each text once (without context takeover the result is the same for everyone).
    Forgotten at the end of the turn."""

    def __init__(self) -> None:
        self._frames: dict[tuple[int, bytes], bytes] = {}
        self._clearing = False

    def frame(self, extension: PerMessageDeflate, text: bytes) -> bytes:
        key = (extension.local_max_window_bits, text)
        frame = self._frames.get(key)
        if frame is None:
            frame = Frame(Opcode.TEXT, text).serialize(mask=False, extensions=[extension])
            self._frames[key] = frame
            if not self._clearing:
                self._clearing = True
                asyncio.get_running_loop().call_soon(self._clear)
        return frame

    def _clear(self) -> None:
        self._frames.clear()
        self._clearing = False


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame (server to client, RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


def deflate_factory(ratio: int, *, context: bool = False) -> CappedDeflateFactory:
    """The permessage-deflate offer ``serve.py`` accepts: capped at ``ratio`` (0: no cap), and
    without context takeover in either direction unless ``context``."""
    return CappedDeflateFactory(ratio, **({} if context else NO_CONTEXT))


def encode_texts(protocol: Protocol, texts: list[bytes], shared: SharedFrames) -> bytes:
    """The frames of these UTF-8 text messages for ``protocol``'s connection, in order, to be
    written in one go: plain frames without an extension, shared ones with permessage-deflate
    without context takeover, else compressed with the connection's own context (through
    ``protocol``, whose queued output this takes)."""
    extensions = protocol.extensions
    if not extensions:
        return b"".join([text_frame(text) for text in texts])
    deflate = extensions[0]
    if len(extensions) == 1 and isinstance(deflate, PerMessageDeflate) and deflate.local_no_context_takeover:
        # without context takeover the frame is the same for everyone: shared
        return b"".join([shared.frame(deflate, text) for text in texts])
    for text in texts:  # compressed with this connection's own context
        protocol.send_text(text)
    return b"".join(protocol.data_to_send())
