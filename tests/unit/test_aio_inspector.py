"""client.inspect() on the three clients: what it records, and that it costs nothing once closed."""

from __future__ import annotations

import asyncio
from typing import Any

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.testing import FakePyrtServer, FakeTransport
from tests.unit.loop_support import run, until

FAST = Backoff(initial=0.01, maximum=0.02)


def make(server: FakePyrtServer | None = None, **kwargs: Any) -> tuple[WebSocketClient, FakeTransport]:
    transport = FakeTransport(
        server if server is not None else FakePyrtServer(), asyncio.get_running_loop().call_soon
    )
    kwargs.setdefault("heartbeat", None)
    kwargs.setdefault("backoff", FAST)
    return WebSocketClient("ws://test/ws", transport=transport, **kwargs), transport


class Sink:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.closed = False

    def update(self, html: str) -> None:
        self.shown.append(html)

    def close(self) -> None:
        self.closed = True


def test_the_text_shows_a_reconnect_with_its_reason_and_an_ack_matched_to_its_send() -> None:
    async def scenario() -> None:
        client, transport = make()
        inspector = client.inspect()
        await client.connect().wait_open()
        transport.drop(1012, "restarting")
        await until(lambda: client.stats.reconnects == 1 and client.ready_state == client.OPEN)
        assert await client.publish("chat", {"n": 1}) is not None
        text = str(inspector)
        assert "open -> reconnecting" in text
        assert "1012" in text
        assert "restarting" in text
        assert "[answers publish #" in text
        assert 'chat {"n":1}' in text

    run(scenario)


def test_inspect_returns_the_open_inspector_and_a_new_one_after_close() -> None:
    async def scenario() -> None:
        client, _ = make()
        first = client.inspect()
        assert client.inspect() is first
        first.close()
        assert not first.attached
        assert client.inspect() is not first

    run(scenario)


def test_nothing_is_recorded_once_closed_and_the_engine_has_no_wrappers_left() -> None:
    async def scenario() -> None:
        client, _ = make()
        inspector = client.inspect()
        engine = client._engine
        assert {"actions", "received", "send"} <= set(vars(engine))
        inspector.close()
        assert not {"actions", "received", "send"} & set(vars(engine))
        await client.connect().wait_open()
        client.send("after")
        await client.send_with_ack("also after")
        assert inspector.recorder.frames() == ()
        assert list(inspector.recorder.timeline) == []

    run(scenario)


def test_a_live_view_is_refreshed_after_changes_throttled_and_closed_with_the_inspector() -> None:
    async def scenario() -> None:
        client, _ = make()
        inspector = client.inspect()
        sink = Sink()
        inspector.add_sink(sink)
        await client.connect().wait_open()
        for i in range(20):
            client.send(i)
        await until(lambda: any("message 19" in html for html in sink.shown))
        assert len(sink.shown) < 10  # twenty sends, a few refreshes
        inspector.close()
        assert sink.closed

    run(scenario)


def test_an_sse_client_records_its_events_and_states() -> None:
    from pyrt.aio.fetch_event_source import FetchEventSource
    from pyrt.testing import FakeFetchTransport

    async def scenario() -> None:
        transport = FakeFetchTransport()
        client = FetchEventSource("/sse", transport=transport)
        inspector = client.inspect()
        client.connect()
        await until(lambda: transport.request is not None)
        transport.respond(200)
        transport.send(b"event: tick\ndata: 1\nid: 5\n\n")
        await until(lambda: inspector.recorder.frames())
        text = inspector.text()
        assert text.startswith("FetchEventSource [open] over fetch")
        assert "<- tick id=5 1" in text
        inspector.close()
        assert "_dispatch" not in vars(client)
        client.close()

    run(scenario)


def test_an_eventsource_client_shows_a_lost_stream_with_its_reason_and_its_events() -> None:
    from pyrt.aio.eventsource import EventSourceClient
    from pyrt.testing import FakeEventSourceTransport

    async def scenario() -> None:
        transport = FakeEventSourceTransport()
        client = EventSourceClient("/sse?channel=news", transport=transport, backoff=FAST)
        inspector = client.inspect()
        client.connect()
        transport.open()
        transport.send("hello", id="1-1")
        transport.drop()
        await until(lambda: client.stats.disconnects == 1)
        text = inspector.text()
        assert text.startswith("EventSourceClient [")
        assert "over eventsource" in text
        assert "<- message id=1-1 hello" in text
        assert "open -> connecting  (connection lost; the browser is reconnecting)" in text
        inspector.close()
        client.close()

    run(scenario)


def test_a_client_over_the_http_binding_says_so_and_shows_its_frames() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        loop = asyncio.get_running_loop()
        client = WebSocketClient(
            "ws://test/ws",
            transport=FakeTransport(server, loop.call_soon),
            http_transport=FakeTransport(server, loop.call_soon),
            transports=("http",),
            heartbeat=None,
        )
        inspector = client.inspect()
        await client.connect().wait_open(5)
        assert await client.send_with_ack("over http") == "over http"
        text = inspector.text()
        assert text.startswith("WebSocketClient [open] over http")
        assert "[answers message #" in text
        inspector.close()

    run(scenario)


class Follower:
    def __init__(self) -> None:
        self.sessions: list[str] = []
        self.closed = False

    def session(self, session: str) -> None:
        self.sessions.append(session)

    def close(self) -> None:
        self.closed = True


def test_a_follower_hears_each_session_and_is_closed_with_the_inspector() -> None:
    async def scenario() -> None:
        client, transport = make()
        inspector = client.inspect()
        follower = Follower()
        inspector.follow(follower)
        assert follower.sessions == []  # not connected yet
        await client.connect().wait_open()
        transport.drop()
        await until(lambda: client.stats.reconnects == 1 and client.ready_state == client.OPEN)
        await client.send_with_ack("after")  # actions after the reconnect: the new session is seen
        assert follower.sessions == ["s1", "s2"]
        inspector.record_server({"event": "ack", "id": "x", "at": 1.0, "session": "s2"})
        assert "ack id=x" in inspector.text()
        inspector.close()
        assert follower.closed

    run(scenario)


def test_over_the_binary_binding_bytes_frames_are_decoded_and_their_acks_matched() -> None:
    async def scenario() -> None:
        client, _ = make(FakePyrtServer(binary=True))
        inspector = client.inspect()
        await client.connect().wait_open()
        await client.publish("blobs", b"\x00\x01binary")
        kept = [(inbound, frame) for _, inbound, frame in inspector.recorder._raw]
        # the server's, MessagePack
        assert (True, bytes) in {(inbound, type(frame)) for inbound, frame in kept}
        assert (False, bytes) in {(inbound, type(frame)) for inbound, frame in kept}  # the publish of bytes
        text = str(inspector)
        assert "[answers publish #" in text, text
        assert "blobs" in text
        outbound = [f for f in inspector.recorder.frames() if f.direction == "out" and "blobs" in f.summary]
        assert outbound
        assert outbound[0].ack_id is not None

    run(scenario)
