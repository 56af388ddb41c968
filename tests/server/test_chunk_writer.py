"""SSE streams written around ASGI under uvicorn's httptools protocol: valid chunks, gzip in order."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from types import SimpleNamespace
from typing import Any

import httpx

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.chunk_writer import ChunkWriter, chunk_writer
from pyrt.server.sse_gzip import GzipStream
from tests.server.wsclient import publish_http, run


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


def cycle(**state: Any) -> SimpleNamespace:
    values: dict[str, Any] = {
        "response_started": True,
        "chunked_encoding": True,
        "response_complete": False,
        "disconnected": False,
        "flow": SimpleNamespace(write_paused=False),
        "transport": FakeTransport(),
    }
    values.update(state)
    return SimpleNamespace(**values)


def dechunk(data: bytes) -> bytes:
    out, pos = b"", 0
    while pos < len(data):
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        out += data[end + 2 : end + 2 + size]
        assert data[end + 2 + size : end + 4 + size] == b"\r\n"
        pos = end + 4 + size
    return out


def test_chunks_are_written_in_the_chunked_encoding() -> None:
    state = cycle()
    writer = ChunkWriter(state, None)
    assert writer.pyrt_ready()
    writer.pyrt_send_body(b"data: 1\n\n")
    writer.pyrt_send_body(b"")  # nothing to write: no empty chunk (that would end the body)
    writer.pyrt_send_body(b"data: 2\n\n")
    assert state.transport.written == [b"9\r\ndata: 1\n\n\r\n", b"9\r\ndata: 2\n\n\r\n"]


def test_it_is_not_ready_unless_the_response_streams_and_the_socket_has_room() -> None:
    for blocked in (
        {"response_started": False},
        {"chunked_encoding": False},
        {"response_complete": True},
        {"disconnected": True},
        {"flow": SimpleNamespace(write_paused=True)},
    ):
        assert not ChunkWriter(cycle(**blocked), None).pyrt_ready(), blocked


def test_gzip_chunks_share_the_streams_compressor_in_order() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> bytes:
        stream = GzipStream(send)
        state = cycle()
        writer = ChunkWriter(state, stream.compress)
        await stream({"type": "http.response.start", "status": 200, "headers": []})
        writer.pyrt_send_body(b"data: 1\n\n")
        await stream({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
        writer.pyrt_send_body(b"data: 3\n\n")
        await stream({"type": "http.response.body", "body": b"", "more_body": False})
        direct = [dechunk(chunk) for chunk in state.transport.written]
        asgi = [message["body"] for message in sent[1:]]
        return direct[0] + asgi[0] + direct[1] + asgi[1]

    assert gzip.decompress(asyncio.run(scenario())) == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"


def test_other_servers_get_the_asgi_path() -> None:
    async def send(message: dict[str, Any]) -> None:
        return None

    assert chunk_writer(None) is None
    assert chunk_writer(send) is None


def test_serve_py_streams_a_burst_in_order_with_and_without_gzip(pyrt_server: ServerProcess) -> None:
    channel = f"burst-{uuid.uuid4().hex[:8]}"

    async def read(encoding: str, ready: asyncio.Event, count: int) -> list[str]:
        headers = {"Accept-Encoding": encoding, "Accept": "text/event-stream"}
        got: list[str] = []
        async with (
            httpx.AsyncClient(timeout=20) as client,
            client.stream("GET", f"{pyrt_server.url}/sse?channel={channel}", headers=headers) as response,
        ):
            assert response.headers.get("content-encoding") == ("gzip" if encoding == "gzip" else None)
            ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    got.append(line[6:])
                    if len(got) == count:
                        return got
        return got

    async def scenario() -> None:
        plain_ready, gzip_ready = asyncio.Event(), asyncio.Event()
        readers = [
            asyncio.ensure_future(read("identity", plain_ready, 200)),
            asyncio.ensure_future(read("gzip", gzip_ready, 200)),
        ]
        # The headers come after the subscription took effect: nothing published now is missed.
        await asyncio.wait_for(asyncio.gather(plain_ready.wait(), gzip_ready.wait()), 10)
        await asyncio.gather(*(publish_http(pyrt_server.url, channel, n) for n in range(200)))
        plain, zipped = await asyncio.wait_for(asyncio.gather(*readers), 20)
        assert sorted(int(x) for x in plain) == list(range(200))
        assert zipped == plain  # the same publications in the same (offset) order

    run(scenario())
