"""follow_server(inspector, token): a CPython client's inspector shows the server's trace of its own
connection, and follows it to the new session after a reconnect (real serve.py, httpx, websockets)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from pyrt import WebSocketClient
from pyrt.aio.server_side import follow_server
from pyrt.engine.backoff import Backoff
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.server.cpython_support import Controls, new_cid, run, until

ADMIN = secrets.token_urlsafe(24)


def test_the_inspector_shows_the_servers_side_of_each_session(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo", "--demo-tick", "0", "--admin-token", ADMIN)
    cid = new_cid()

    async def scenario() -> None:
        client = WebSocketClient(f"{srv.ws_url}/ws?cid={cid}", heartbeat=None, backoff=Backoff(initial=0.1))
        inspector = client.inspect()
        await client.connect().wait_open(10)
        side = follow_server(inspector, ADMIN)
        first = client.session

        def server_saw(what: str) -> bool:
            return any(note.topic == what for note in inspector.recorder.server)

        # The server attaches the trace before it answers: once the stream is open, it is followed.
        await until(lambda: side.source is not None and side.source.state.name == "OPEN")
        await client.publish("room", "one")
        await until(lambda: server_saw("ack"), message="the server's ack of the publish")
        assert server_saw("publish")
        async with Controls(srv) as ctl:
            assert await ctl.drop(cid) == 1
        await until(lambda: client.session not in (None, first) and client.state.name == "OPEN")
        inspector.recorder.server.clear()
        await until(lambda: side.source is not None and side.source.state.name == "OPEN")
        await client.publish("room", "two")
        await until(lambda: server_saw("ack"), message="the new session's ack")
        text = inspector.text()
        assert "server side:" in text
        assert "channel=room" in text
        inspector.close()
        assert side.source is None
        client.close()
        await client.wait_closed(5)

    run(scenario)


def test_the_servers_address_comes_from_the_clients_url() -> None:
    from pyrt.aio.server_side import http_base

    assert http_base("ws://127.0.0.1:8000/ws?cid=x") == "http://127.0.0.1:8000"
    assert http_base("wss://rt.example.com/rt/ws") == "https://rt.example.com/rt"
    assert http_base("/ws") == ""
