"""permessage-deflate for serve.py (pyrt/server/ws_deflate.py): a compressed message inflates only
so far, the offer is negotiated without context takeover, a fan-out's frame is compressed once."""

from __future__ import annotations

import asyncio
import zlib

import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from pyrt.server.ws_deflate import (
    INFLATE_FLOOR,
    CappedDeflate,
    InflatesTooMuch,
    SharedFrames,
    deflate_factory,
    encode_texts,
    text_frame,
)


def compressed(data: bytes, *, fin: bool = True, opcode: Opcode = Opcode.TEXT) -> Frame:
    """``data`` as a client without context takeover sends it."""
    client = PerMessageDeflate(True, True, 12, 12)
    return client.encode(Frame(opcode, data, fin=fin))


def capped(ratio: int) -> CappedDeflate:
    extension = CappedDeflate(True, True, 12, 12)
    extension.ratio = ratio
    return extension


def test_a_message_inflates_to_the_floor_or_its_ratio_and_no_further() -> None:
    bomb = compressed(b"\0" * (1024 * 1024))  # about 1 KiB inflating to 1 MiB
    with pytest.raises(InflatesTooMuch, match="more than 32 times"):
        capped(32).decode(bomb)
    assert capped(32).decode(compressed(b"\0" * INFLATE_FLOOR)).data == b"\0" * INFLATE_FLOOR
    assert len(capped(0).decode(bomb).data) == 1024 * 1024  # 0: no cap


def test_the_cap_counts_over_the_frames_of_a_fragmented_message() -> None:
    stream = zlib.compressobj(wbits=-12)
    half = INFLATE_FLOOR * 3 // 4  # each frame alone inflates below the floor, the two above it
    first = stream.compress(b"\0" * half) + stream.flush(zlib.Z_SYNC_FLUSH)
    rest = (stream.compress(b"\0" * half) + stream.flush(zlib.Z_SYNC_FLUSH))[:-4]  # RFC 7692 7.2.1
    extension = capped(2)
    assert len(extension.decode(Frame(Opcode.TEXT, first, fin=False, rsv1=True)).data) == half
    with pytest.raises(InflatesTooMuch):
        extension.decode(Frame(Opcode.CONT, rest, fin=True))


def test_the_offer_is_accepted_without_context_takeover_unless_asked() -> None:
    offer = [("server_no_context_takeover", None), ("client_max_window_bits", None)]
    _, extension = deflate_factory(32).process_request_params(offer, [])
    assert isinstance(extension, CappedDeflate)
    assert extension.ratio == 32
    assert extension.local_no_context_takeover
    assert extension.remote_no_context_takeover
    _, kept = deflate_factory(32, context=True).process_request_params([], [])
    assert not kept.local_no_context_takeover  # type: ignore[attr-defined]


def test_plain_text_frames_have_the_shortest_length_header() -> None:
    assert text_frame(b"hi") == b"\x81\x02hi"
    assert text_frame(b"x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame(b"x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


def deflating_protocol(*, context: bool) -> Protocol:
    protocol = ServerProtocol(state=State.OPEN)
    protocol.extensions = [PerMessageDeflate(not context, not context, 12, 12)]
    return protocol


def test_a_fan_out_compresses_each_text_once_for_every_connection() -> None:
    async def scenario() -> None:
        shared = SharedFrames()
        first, second = deflating_protocol(context=False), deflating_protocol(context=False)
        a = encode_texts(first, [b"hello"], shared)
        b = encode_texts(second, [b"hello"], shared)
        assert a == b
        assert shared.frame(first.extensions[0], b"hello") is shared.frame(second.extensions[0], b"hello")  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the end of the turn: forgotten
        assert shared._frames == {}

    asyncio.run(scenario())


def test_texts_go_out_plain_without_an_extension_and_in_the_connections_own_context_with_one() -> None:
    async def scenario() -> None:
        shared = SharedFrames()
        plain = encode_texts(ServerProtocol(state=State.OPEN), [b"a", b"b"], shared)
        assert plain == text_frame(b"a") + text_frame(b"b")
        text = b"the same text, again and again " * 4
        own = encode_texts(deflating_protocol(context=True), [text, text], shared)
        assert shared._frames == {}  # nothing shared: with its context a connection's bytes are its own
        client = ClientProtocol(parse_uri("ws://x/"), state=State.OPEN)
        client.extensions = [PerMessageDeflate(False, False, 12, 12)]
        client.receive_data(own)
        assert [frame.data for frame in client.events_received()] == [text, text]  # type: ignore[union-attr]
        assert len(own) < len(text_frame(text))  # both, compressed, in less than one plain frame

    asyncio.run(scenario())
