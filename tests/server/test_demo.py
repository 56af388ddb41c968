"""Demo controls: drop (the client sees 1006), stall (a half-open connection), received log."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from pyrt.pytest_plugin.server_process import ServerProcess
from tests.server.test_sse_endpoint import open_stream
from tests.server.wsclient import Client, run


def test_drop_by_session_aborts_the_socket_without_a_close_frame(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        victim = await Client.connect(pyrt_server.ws_url)
        bystander = await Client.connect(pyrt_server.ws_url)
        async with httpx.AsyncClient() as http:
            answer = await http.post(pyrt_server.url + "/demo/drop", json={"session": victim.session})
        assert answer.json() == {"dropped": 1}
        assert await victim.close_code() is None  # 1006: no close frame
        await bystander.send({"type": "ping", "t": 1})
        await bystander.expect("pong")
        await bystander.close()

    run(scenario())


def test_drop_by_cid_ends_websocket_and_sse_connections(pyrt_server: ServerProcess) -> None:
    cid = uuid.uuid4().hex

    async def scenario() -> None:
        ws = await Client.connect(pyrt_server.ws_url, f"?cid={cid}")
        async with httpx.AsyncClient(timeout=5) as http:
            stream = await open_stream(http, pyrt_server.url, params={"channel": "feed", "cid": cid})
            await stream.read_until(lambda s: s.decoder.retry is not None)
            answer = await http.post(pyrt_server.url + "/demo/drop", json={"cid": cid})
            assert answer.json() == {"dropped": 2}
            assert await ws.close_code() is None
            ended = False
            try:
                await stream.read_until(lambda s: False, timeout=5)
            except (httpx.HTTPError, StopAsyncIteration):
                ended = True
            assert ended

    run(scenario())


def test_stall_stops_answers_for_that_long_then_resumes(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        client = await Client.connect(pyrt_server.ws_url)
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                pyrt_server.url + "/demo/stall", json={"session": client.session, "seconds": 0.6}
            )
        assert answer.json() == {"stalled": 1}
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await client.send({"type": "ping", "t": "during stall"})
        await client.expect("pong", timeout=5)
        assert loop.time() - sent >= 0.4
        await client.close()

    run(scenario())


def test_block_refuses_that_clients_websockets_for_a_while_and_drops_the_open_one(
    pyrt_server: ServerProcess,
) -> None:
    cid, other = uuid.uuid4().hex, uuid.uuid4().hex

    async def scenario() -> None:
        ws = await Client.connect(pyrt_server.ws_url, f"?cid={cid}")
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.post(pyrt_server.url + "/demo/block", json={"cid": cid, "seconds": 60})
            assert answer.json() == {"blocked": 60, "dropped": 1}
            assert await ws.close_code() is None  # aborted: 1006
            with pytest.raises(InvalidStatus) as refused:
                await Client.connect(pyrt_server.ws_url, f"?cid={cid}")
            assert refused.value.response.status_code == 403
            assert b"blocked" in refused.value.response.body
            bystander = await Client.connect(pyrt_server.ws_url, f"?cid={other}")  # another client
            await bystander.close()
            # the HTTP binding still passes, as on a network that blocks only WebSockets
            async with http.stream(
                "GET", f"{pyrt_server.url}/ws?cid={cid}", headers={"Accept": "text/event-stream"}
            ) as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        assert '"type":"welcome"' in line
                        break
            answer = await http.post(pyrt_server.url + "/demo/block", json={"cid": cid, "seconds": 0})
            assert answer.json() == {"blocked": 0, "dropped": 0}
        again = await Client.connect(pyrt_server.ws_url, f"?cid={cid}")  # lifted
        await again.close()

    run(scenario())


def test_controls_need_a_selector(pyrt_server: ServerProcess) -> None:
    assert httpx.post(pyrt_server.url + "/demo/drop", json={}).status_code == 400
    assert httpx.post(pyrt_server.url + "/demo/stall", json={"cid": "x", "seconds": -1}).status_code == 400
    assert httpx.get(pyrt_server.url + "/demo/received").status_code == 400
    assert httpx.post(pyrt_server.url + "/demo/block", json={"session": "x"}).status_code == 400
    assert httpx.post(pyrt_server.url + "/demo/block", json={"cid": "x", "seconds": 4000}).status_code == 400


def test_controls_are_absent_without_demo_mode(pyrt_start_server) -> None:  # type: ignore[no-untyped-def]
    plain = pyrt_start_server("--no-demo")
    for answer in (
        httpx.post(plain.url + "/demo/drop", json={"cid": "x"}),
        httpx.get(plain.url + "/demo/received"),
    ):
        assert answer.status_code == 404
        assert answer.text == "the demo controls are off: start serve.py with --demo"
