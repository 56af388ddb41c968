"""/sse against a real serve.py: named events with offsets as ids, resume, heartbeats, 204, no injection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.wire.sse import ServerSentEvent, SSEDecoder
from tests.server.wsclient import publish_http, run


def unique() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


class Stream:
    """An open /sse response, decoded with pyrt's own SSE decoder."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.decoder = SSEDecoder()
        self.raw = b""
        self.events: list[ServerSentEvent] = []
        self._chunks = response.aiter_bytes()  # decoded (the server gzips for httpx)

    async def read_until(self, done: Callable[[Stream], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not done(self):
                chunk = await anext(self._chunks)
                self.raw += chunk
                self.events.extend(self.decoder.feed(chunk))

    async def next_events(self, count: int, timeout: float = 5.0) -> list[ServerSentEvent]:
        start = len(self.events)
        await self.read_until(lambda s: len(s.events) >= start + count, timeout)
        return self.events[start : start + count]


async def open_stream(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Stream:
    request = client.build_request("GET", url + "/sse", **kwargs)
    response = await client.send(request, stream=True)
    assert response.status_code == 200, response.status_code
    return Stream(response)


def test_publications_arrive_as_named_events_with_offsets_as_ids(pyrt_server: ServerProcess) -> None:
    channel = unique()

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            stream = await open_stream(client, pyrt_server.url, params={"channel": channel})
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert "no-cache" in stream.response.headers["cache-control"]
            await stream.read_until(lambda s: s.decoder.retry is not None)
            assert stream.raw.startswith(b"retry: 1000\n\n")
            offsets = [
                await publish_http(pyrt_server.url, channel, {"n": 1}, event="tick"),
                await publish_http(pyrt_server.url, channel, {"text": "hi"}, event="notification"),
                await publish_http(pyrt_server.url, channel, [1, 2]),
            ]
            events = await stream.next_events(3)
            assert [e.type for e in events] == ["tick", "notification", "message"]
            assert [e.id for e in events] == offsets
            assert [e.json() for e in events] == [{"n": 1}, {"text": "hi"}, [1, 2]]
            await stream.response.aclose()

    run(scenario())


def test_last_event_id_header_resumes_after_that_offset(pyrt_server: ServerProcess) -> None:
    channel = unique()

    async def scenario() -> None:
        offsets = [await publish_http(pyrt_server.url, channel, n) for n in range(5)]
        async with httpx.AsyncClient(timeout=5) as client:
            stream = await open_stream(
                client, pyrt_server.url, params={"channel": channel}, headers={"Last-Event-ID": offsets[1]}
            )
            events = await stream.next_events(3)
            assert [e.json() for e in events] == [2, 3, 4]
            assert [e.id for e in events] == offsets[2:]
            await stream.response.aclose()

    run(scenario())


def test_last_event_id_query_parameter_resumes_and_zero_replays_everything(
    pyrt_server: ServerProcess,
) -> None:
    channel = unique()

    async def scenario() -> None:
        offsets = [await publish_http(pyrt_server.url, channel, n) for n in range(4)]
        async with httpx.AsyncClient(timeout=5) as client:
            resumed = await open_stream(
                client, pyrt_server.url, params={"channel": channel, "lastEventId": offsets[2]}
            )
            assert [e.json() for e in await resumed.next_events(1)] == [3]
            await resumed.response.aclose()
            everything = await open_stream(
                client, pyrt_server.url, params={"channel": channel, "lastEventId": "0"}
            )
            assert [e.json() for e in await everything.next_events(4)] == [0, 1, 2, 3]
            await everything.response.aclose()

    run(scenario())


def test_heartbeat_comments_keep_an_idle_stream_alive(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    quick = pyrt_start_server("--sse-heartbeat", "0.1", "--demo-tick", "0")

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            stream = await open_stream(client, quick.url, params={"channel": unique()})
            await stream.read_until(lambda s: s.raw.count(b": hb\n") >= 2, timeout=3)
            assert stream.events == []  # comments dispatch nothing
            await stream.response.aclose()

    run(scenario())


def test_missing_or_invalid_channel_answers_204(pyrt_server: ServerProcess) -> None:
    assert httpx.get(pyrt_server.url + "/sse").status_code == 204
    assert httpx.get(pyrt_server.url + "/sse", params={"channel": "not a channel"}).status_code == 204


def test_data_cannot_inject_fields_or_events(pyrt_server: ServerProcess) -> None:
    channel = unique()
    evil = "line1\n\nevent: admin\nid: 999-999\ndata: injected\r\nretry: 1\rx"

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            stream = await open_stream(client, pyrt_server.url, params={"channel": channel})
            await stream.read_until(lambda s: s.decoder.retry is not None)
            offset = await publish_http(pyrt_server.url, channel, {"text": evil})
            await publish_http(pyrt_server.url, channel, "next")
            events = await stream.next_events(2)
            assert events[0].type == "message"
            assert events[0].id == offset
            assert events[0].json() == {"text": evil}
            assert events[1].json() == "next"
            assert stream.decoder.retry == 1000
            await stream.response.aclose()

    run(scenario())


def test_foreign_origin_is_refused_with_403(pyrt_server: ServerProcess) -> None:
    response = httpx.get(
        pyrt_server.url + "/sse", params={"channel": "feed"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


def test_the_demo_feed_has_distinct_named_events(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    fast = pyrt_start_server("--demo", "--demo-tick", "0.02")

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            stream = await open_stream(client, fast.url, params={"channel": "feed"})
            await stream.read_until(
                lambda s: {e.type for e in s.events} >= {"tick", "update", "notification"}
            )
            ticks = [e.json()["n"] for e in stream.events if e.type == "tick"]
            assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
            await stream.response.aclose()

    run(scenario())
