"""The HTTP binding of /ws against a real serve.py (default settings): the same protocol over an
event stream and ordered POSTs, with the limits and the tokens of /ws."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from tests.server.cpython_support import run

SECRET = "binding-secret"


class Stream:
    """One connection over the HTTP binding, read as the client's transport reads it."""

    def __init__(self, http: httpx.AsyncClient, response: httpx.Response) -> None:
        self.http = http
        self.response = response
        self.lines: AsyncIterator[str] = response.aiter_lines()
        self.key: str | None = None
        self.seq = 0
        self.url = str(response.url)
        self.headers: dict[str, str] = {}

    async def event(self, timeout: float = 5.0) -> tuple[str, str]:
        """The next event: ``(type, data)``."""
        kind, data = "message", ""
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                if line == "":
                    if data:
                        return kind, data
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(": ")
                if name == "event":
                    kind = value
                elif name == "data":
                    data = value
        raise AssertionError("the stream ended")

    async def frame(self, timeout: float = 5.0) -> dict[str, Any]:
        kind, data = await self.event(timeout)
        assert kind == "message", (kind, data)
        frame: dict[str, Any] = json.loads(data)
        return frame

    async def post(
        self, *frames: dict[str, Any] | str, seq: int | None = None, **extra: str
    ) -> httpx.Response:
        if seq is None:
            self.seq += 1
            seq = self.seq
        body = "\n".join(f if isinstance(f, str) else json.dumps(f) for f in frames)
        params = {"key": self.key or "", "seq": str(seq), **extra}
        return await self.http.post(self.url, params=params, content=body, headers=self.headers)


async def open_stream(server: ServerProcess, token: str | None = None) -> Stream:
    http = httpx.AsyncClient(timeout=10)
    headers = {"Accept": "text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = http.build_request("GET", server.url + "/ws", headers=headers)
    response = await http.send(request, stream=True)
    stream = Stream(http, response)
    stream.headers = {"Authorization": headers["Authorization"]} if token is not None else {}
    return stream


async def welcomed(server: ServerProcess, token: str | None = None) -> Stream:
    stream = await open_stream(server, token)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    welcome = await stream.frame()
    assert welcome["type"] == "welcome"
    stream.key = welcome["key"]
    assert isinstance(stream.key, str)
    assert len(stream.key) >= 32
    return stream


def test_a_plain_get_of_the_websocket_path_says_how_to_come_in(pyrt_server: ServerProcess) -> None:
    answer = httpx.get(pyrt_server.url + "/ws")
    assert answer.status_code == 426
    assert "Accept: text/event-stream" in answer.text


def test_frames_posted_are_answered_on_the_stream_in_order_with_the_default_limits(
    pyrt_server: ServerProcess,
) -> None:
    async def scenario() -> None:
        stream = await welcomed(pyrt_server)
        answer = await stream.post(
            {"type": "ping", "t": 1},
            {"type": "message", "id": "m-1", "data": {"n": 1}},
            {"type": "message", "data": "echo"},
        )
        assert answer.status_code == 204
        assert await stream.frame() == {"type": "pong", "t": 1}
        assert await stream.frame() == {"type": "ack", "id": "m-1", "ok": True, "data": {"n": 1}}
        assert await stream.frame() == {"type": "message", "data": "echo"}
        await stream.http.aclose()

    run(scenario)


def test_the_welcome_over_http_advertises_the_same_limits_as_over_websocket(
    pyrt_server: ServerProcess,
) -> None:
    async def scenario() -> None:
        stream = await open_stream(pyrt_server)
        welcome = await stream.frame()
        assert welcome["limits"]["rate"] == 200.0
        assert welcome["limits"]["burst"] == 400
        await stream.http.aclose()

    run(scenario)


def test_a_post_sent_again_is_applied_once_and_a_gap_is_refused(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        stream = await welcomed(pyrt_server)
        assert (await stream.post({"type": "message", "data": "once"})).status_code == 204
        assert (
            await stream.post({"type": "message", "data": "once"}, seq=1)
        ).status_code == 204  # lost answer
        assert (await stream.post({"type": "ping", "t": "after"}, seq=2)).status_code == 204
        assert await stream.frame() == {"type": "message", "data": "once"}
        assert await stream.frame() == {"type": "pong", "t": "after"}  # the repeat applied nothing
        gap = await stream.post({"type": "ping"}, seq=9)
        assert gap.status_code == 409
        await stream.http.aclose()

    run(scenario)


def test_a_post_to_an_unknown_connection_is_404_and_a_huge_one_413(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        http = httpx.AsyncClient(timeout=10)
        gone = await http.post(pyrt_server.url + "/ws", params={"key": "nope", "seq": "1"}, content="{}")
        assert gone.status_code == 404
        stream = await welcomed(pyrt_server)
        huge = await stream.post("x" * (4 * 1024 * 1024 + 1))
        assert huge.status_code == 413
        await stream.http.aclose()
        await http.aclose()

    run(scenario)


def test_a_close_posted_ends_the_stream(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        stream = await welcomed(pyrt_server)
        assert (await stream.post({"type": "ping", "t": 2}, close="1000")).status_code == 204
        assert await stream.frame() == {"type": "pong", "t": 2}
        with pytest.raises(AssertionError, match="the stream ended"):
            await stream.event()
        assert (await stream.post({"type": "ping"})).status_code == 404  # gone
        await stream.http.aclose()

    run(scenario)


@pytest.fixture
def secured(pyrt_start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return pyrt_start_server(env={"PYRT_TOKEN_SECRET": SECRET})


def test_a_bad_token_gets_the_4401_close_of_websocket_and_a_post_needs_the_same_subject(
    secured: ServerProcess,
) -> None:
    async def scenario() -> None:
        refused = await open_stream(secured, "not-a-token")
        kind, data = await refused.event()
        assert (kind, json.loads(data)["code"]) == ("close", 4401)
        await refused.http.aclose()
        stream = await welcomed(secured, make_token(SECRET, "alice", ttl=60))
        stream.headers = {"Authorization": f"Bearer {make_token(SECRET, 'mallory', ttl=60)}"}
        assert (await stream.post({"type": "ping"})).status_code == 403
        stream.headers = {}
        assert (await stream.post({"type": "ping"})).status_code == 403
        stream.headers = {"Authorization": f"Bearer {make_token(SECRET, 'alice', ttl=60)}"}
        stream.seq = 0
        assert (await stream.post({"type": "ping", "t": 3})).status_code == 204
        assert await stream.frame() == {"type": "pong", "t": 3}
        await stream.http.aclose()

    run(scenario)


def test_a_token_that_expires_ends_the_stream_with_the_4001_close_event(secured: ServerProcess) -> None:
    async def scenario() -> None:
        stream = await welcomed(secured, make_token(SECRET, "alice", ttl=2))
        kind, data = await stream.event(timeout=6)
        assert kind == "close"
        assert json.loads(data) == {"code": 4001, "reason": "token expired: reconnect with a fresh token"}
        await stream.http.aclose()

    run(scenario)


def test_a_foreign_origin_is_refused_as_on_websocket(pyrt_server: ServerProcess) -> None:
    answer = httpx.get(
        pyrt_server.url + "/ws", headers={"Accept": "text/event-stream", "Origin": "http://evil.example"}
    )
    assert answer.status_code == 403


def test_a_foreign_host_is_refused_as_on_websocket(pyrt_server: ServerProcess) -> None:
    answer = httpx.get(
        pyrt_server.url + "/ws", headers={"Accept": "text/event-stream", "Host": "evil.example"}
    )
    assert answer.status_code == 403


async def _raw_post(
    server: ServerProcess, key: str, seq: int, length: int, part: bytes
) -> asyncio.StreamWriter:
    """A POST whose head announces ``length`` bytes and whose body stops after ``part``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"POST /ws?key={key}&seq={seq} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    )
    writer.write(head.encode() + part)
    await writer.drain()
    writer.reader = reader  # type: ignore[attr-defined]
    return writer


async def _status(writer: asyncio.StreamWriter) -> int:
    line = await asyncio.wait_for(writer.reader.readline(), 5)  # type: ignore[attr-defined]
    return int(line.split()[1])


def test_a_post_cut_short_applies_nothing_and_its_copy_is_applied_once(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        stream = await welcomed(pyrt_server)
        assert stream.key is not None
        body = json.dumps({"type": "message", "id": "cut-1", "data": "whole"}).encode()
        cut = await _raw_post(pyrt_server, stream.key, 1, len(body), body[: len(body) // 2])
        cut.close()  # the network lost it halfway
        answer = await stream.post({"type": "message", "id": "cut-1", "data": "whole"}, seq=1)
        assert answer.status_code == 204
        assert await stream.frame() == {"type": "ack", "id": "cut-1", "ok": True, "data": "whole"}
        assert (await stream.post({"type": "ping", "t": 9}, seq=2)).status_code == 204
        assert await stream.frame() == {"type": "pong", "t": 9}  # nothing else came: applied once
        await stream.http.aclose()

    run(scenario)


def test_a_third_post_in_flight_on_one_connection_is_refused_before_its_body(
    pyrt_server: ServerProcess,
) -> None:
    async def scenario() -> None:
        stream = await welcomed(pyrt_server)
        assert stream.key is not None
        slow = [await _raw_post(pyrt_server, stream.key, 1, 1000, b"{") for _ in range(2)]
        third = await _raw_post(pyrt_server, stream.key, 1, 1000, b"")
        assert await _status(third) == 429
        for writer in (*slow, third):
            writer.close()
        assert (await stream.post({"type": "ping", "t": 1}, seq=1)).status_code == 204  # still usable
        assert await stream.frame() == {"type": "pong", "t": 1}
        await stream.http.aclose()

    run(scenario)


def test_post_bodies_waiting_count_against_the_addresss_inbox_bytes(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # The per-address budget is lowered to 1 MiB so that two connections reach it (the default,
    # 32 MiB, bounds the same way at 32 times the bytes).
    server = pyrt_start_server("--inbox-bytes-per-ip", str(1024 * 1024))

    async def scenario() -> None:
        first, second = await welcomed(server), await welcomed(server)
        assert first.key is not None
        assert second.key is not None
        posts = [
            await _raw_post(server, first.key, 1, 900_000, b"x" * 800_000),
            await _raw_post(server, second.key, 1, 900_000, b"y" * 400_000),
        ]
        # 1.2 MB waiting from one address: whichever the server read last is refused at once,
        # the other waits for the rest of its body
        answers = [asyncio.ensure_future(_status(post)) for post in posts]
        done, waiting = await asyncio.wait(answers, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert [answer.result() for answer in done] == [429]
        assert len(waiting) == 1
        for answer in waiting:
            answer.cancel()
        for post in posts:
            post.close()
        assert (await second.post({"type": "ping", "t": 2}, seq=1)).status_code == 204
        assert await second.frame() == {"type": "pong", "t": 2}
        await first.http.aclose()
        await second.http.aclose()

    run(scenario)


def test_streams_count_against_the_per_address_cap_as_websockets_do(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server("--max-connections-per-ip", "2")  # lowered: the cap is what is measured

    async def scenario() -> None:
        streams = [await welcomed(server), await welcomed(server)]
        refused = await open_stream(server)
        assert refused.response.status_code == 429
        assert refused.response.headers["retry-after"] == "5"
        await refused.http.aclose()
        for stream in streams:
            await stream.http.aclose()

    run(scenario)
