"""SSE streams are gzip-compressed for clients that accept it, decodable event by event."""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.sse_gzip import accepts_gzip, gzip_send
from pyrt.wire.sse import SSEDecoder
from tests.server.wsclient import publish_http, run


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate, br, zstd", True),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("br", False),
        ("identity", False),
        ("", False),
        (None, False),
        ("gzip;q=bogus", False),
    ],
)
def test_accept_encoding_decides_whether_to_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_each_chunk_decodes_on_its_own_as_soon_as_it_is_sent() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> None:
        wrapped = gzip_send(send)
        await wrapped(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"content-length", b"9")],
            }
        )
        await wrapped({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await wrapped({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        await wrapped({"type": "http.response.body", "body": b"", "more_body": False})

    asyncio.run(scenario())
    headers = dict(sent[0]["headers"])
    assert headers[b"content-encoding"] == b"gzip"
    assert b"content-length" not in headers
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert decoder.decompress(sent[1]["body"]) == b"data: 1\n\n"
    assert decoder.decompress(sent[2]["body"]) == b"data: 2\n\n"
    decoder.decompress(sent[3]["body"])
    assert decoder.eof


Read = tuple[str, int, int, list[Any]]  # content-encoding, bytes on the wire, bytes of text, data


async def read_stream(server: ServerProcess, channel: str, encoding: str, count: int) -> Read:
    """Read ``count`` events of ``channel`` from its start."""
    decoder = SSEDecoder()
    data: list[Any] = []
    wire = text = 0
    headers = {"Accept-Encoding": encoding, "Last-Event-ID": "0"}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{server.url}/sse?channel={channel}", headers=headers) as response,
    ):
        coding = response.headers.get("content-encoding", "identity")
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding == "gzip" else None
        async with asyncio.timeout(10):
            async for raw in response.aiter_raw():
                wire += len(raw)
                chunk = inflate.decompress(raw) if inflate is not None else raw
                text += len(chunk)
                data += [json.loads(event.data) for event in decoder.feed(chunk)]
                if len(data) >= count:
                    break
    return coding, wire, text, data


@pytest.mark.parametrize("encoding", ["gzip, deflate", "identity"])
def test_the_stream_is_gzipped_only_for_clients_that_accept_it(
    pyrt_server: ServerProcess, encoding: str
) -> None:
    channel = f"gz-{uuid.uuid4().hex[:8]}"
    published = [{"n": n, "text": "the same words again and again"} for n in range(50)]

    async def scenario() -> Read:
        for item in published:
            await publish_http(pyrt_server.url, channel, item)
        return await read_stream(pyrt_server, channel, encoding, len(published))

    coding, wire, text, data = run(scenario())
    assert data == published
    if encoding.startswith("gzip"):
        assert coding == "gzip"
        assert wire * 3 < text, f"{wire} bytes on the wire for {text} bytes of events"
    else:
        assert coding == "identity"
        assert wire == text


def test_without_sse_gzip_the_server_sends_plain_text(pyrt_start_server: Any) -> None:
    plain = pyrt_start_server("--demo", "--no-sse-gzip")
    channel = f"gz-{uuid.uuid4().hex[:8]}"

    async def scenario() -> Read:
        await publish_http(plain.url, channel, {"n": 1})
        return await read_stream(plain, channel, "gzip", 1)

    coding, _, _, data = run(scenario())
    assert (coding, data) == ("identity", [{"n": 1}])
