"""Hardening: forwarded addresses, odd paths, disconnects, logs, replay size and framing."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets
from starlette.testclient import TestClient

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from pyrt.server import Settings, create_app
from pyrt.server.brokers.base import BrokerError
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.dedup import Compute, MessageDedup
from tests.faults.scenario import emit
from tests.server.test_sse_endpoint import open_stream
from tests.server.wsclient import Client, run


async def connect_as(server: ServerProcess, forwarded_for: str) -> int:
    """The HTTP status of a /ws handshake claiming to come from ``forwarded_for`` (101: open)."""
    try:
        ws = await websockets.connect(
            server.ws_url + "/ws",
            subprotocols=["pyrt.v1"],  # type: ignore[list-item]
            additional_headers={"X-Forwarded-For": forwarded_for},
        )
    except websockets.InvalidStatus as refused:
        return refused.response.status_code
    OPEN.append(ws)
    return 101


OPEN: list[Any] = []


def test_forwarded_addresses_are_trusted_only_from_configured_proxies(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    untrusted = pyrt_start_server("--max-connections-per-ip", "2")
    proxied = pyrt_start_server("--max-connections-per-ip", "2", "--forwarded-allow-ips", "127.0.0.1")

    async def scenario() -> dict[str, list[int]]:
        spoofed = [await connect_as(untrusted, f"10.0.0.{n}") for n in range(3)]
        behind_proxy = [await connect_as(proxied, f"10.0.0.{n}") for n in range(3)]
        same_client = [await connect_as(proxied, "10.9.9.9") for _ in range(3)]
        for ws in OPEN:
            await ws.close()
        OPEN.clear()
        return {"spoofed": spoofed, "behind_proxy": behind_proxy, "same_client": same_client}

    result = run(scenario())
    emit("abuse.hardening.forwarded", **result)
    assert result == {
        "spoofed": [101, 101, 429],  # X-Forwarded-For from an untrusted peer changes nothing
        "behind_proxy": [101, 101, 101],  # three clients of a trusted proxy
        "same_client": [101, 101, 429],  # counted by their forwarded address
    }


def test_paths_the_system_refuses_answer_404_without_a_traceback(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    long_name = "a" * 300
    statuses = {
        path: httpx.get(server.url + path, timeout=10).status_code
        for path in (
            f"/vendor/pyodide/{long_name}.whl",
            f"/lab/static/pyodide/{long_name}.whl",
            f"/{long_name}.html",
            f"/vendor/pyodide/{long_name}",
            f"/wheels/{long_name}.whl",
        )
    }
    emit("abuse.hardening.long_paths", statuses=sorted(set(statuses.values())))
    assert set(statuses.values()) == {404}, statuses
    assert "Traceback" not in server.log_text()


def test_clients_that_go_away_leave_no_traceback(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    server = pyrt_start_server("--demo", "--demo-tick", "0")
    head = (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"channel":'
    )
    for path in (b"/publish", b"/demo/drop"):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head % path)
            time.sleep(0.1)

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            stream = await open_stream(http, server.url, params={"channel": "gone"})
            await stream.read_until(lambda s: s.decoder.retry is not None)
            await stream.response.aclose()
        client = await Client.connect(server.ws_url)
        await client.send({"type": "subscribe", "channel": "gone"})
        await client.expect("subscribed")
        client.ws.transport.abort()
        await publish(server, "gone", "after they left")

    run(scenario())
    time.sleep(0.3)
    log = server.log_text()
    assert "Traceback" not in log, log
    assert httpx.get(server.url + "/healthz").status_code == 200


async def publish(server: ServerProcess, channel: str, data: Any) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        (await http.post(server.url + "/publish", json={"channel": channel, "data": data})).raise_for_status()


class UnavailableDedup(MessageDedup):
    async def run_once(self, scope: str, message_id: str, compute: Compute) -> tuple[str, bool]:
        raise BrokerError("the broker is down")


class UnavailableBroker(MemoryBroker):
    @property
    def message_dedup(self) -> MessageDedup:
        return UnavailableDedup()


def test_client_data_in_logs_is_quoted(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(allowed_hosts=("testserver",)), broker=UnavailableBroker())
    forged = "m1\nERROR:pyrt.server:forged line"
    with (
        caplog.at_level(logging.WARNING, logger="pyrt.server"),
        TestClient(app) as client,
        client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as ws,
    ):
        ws.receive_json()  # welcome
        ws.send_json({"type": "message", "id": forged, "data": 1})
        assert ws.receive_json()["error"] == "temporarily unavailable, retry"
    lines = [record.getMessage() for record in caplog.records if "not handled" in record.getMessage()]
    assert lines == ["message 'm1\\nERROR:pyrt.server:forged line' not handled: the broker is down"]


def test_credentials_in_query_strings_stay_out_of_the_access_log(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    secret = uuid.uuid4().hex
    httpx.get(server.url + "/healthz", params={"token": secret, "n": "1"})
    with httpx.stream("GET", server.url + "/sse", params={"channel": "x", "access_token": secret}) as sse:
        assert sse.status_code == 200

    async def websocket() -> None:
        ws = await websockets.connect(
            f"{server.ws_url}/ws?api_key={secret}",
            subprotocols=["pyrt.v1"],  # type: ignore[list-item]
        )
        await ws.close()

    run(websocket())
    # The access log line follows the answer: wait for the last request's (stdout is in the log).
    wait_until(lambda: "/ws?api_key=" in server.log_text(), 10, "the WebSocket request is in the access log")
    log = server.log_text()
    assert secret not in log
    assert "token=***" in log
    assert "api_key=***" in log


def test_one_subscribe_replays_at_most_the_replay_limit(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server("--retention", "50", "--max-replay", "10")
    channel = "replay-" + uuid.uuid4().hex[:8]

    async def scenario() -> tuple[dict[str, Any], list[Any], list[Any]]:
        for n in range(30):
            await publish(server, channel, n)
        client = await Client.connect(server.ws_url)
        await client.send({"type": "subscribe", "channel": channel, "since": "0"})
        subscribed = await client.expect("subscribed")
        replayed = [p["data"] for p in await client.publications(channel, 10)]
        await client.send({"type": "ping", "t": 1})
        await client.expect("pong")
        assert not [f for f in client.frames if f["type"] == "publication"]
        await client.close()
        async with httpx.AsyncClient(timeout=5) as http:
            stream = await open_stream(http, server.url, params={"channel": channel, "lastEventId": "0"})
            events = await stream.next_events(10)
        return subscribed, replayed, [int(event.data) for event in events]

    subscribed, replayed, resumed = run(scenario())
    emit("abuse.hardening.replay_cap", recovered=subscribed["recovered"], replayed=len(replayed))
    assert subscribed["recovered"] is False  # 30 were missed: the client knows it has a gap
    assert replayed == list(range(20, 30))
    assert resumed == list(range(20, 30))


def test_the_notebook_site_cannot_be_framed_by_other_sites(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()
    response = httpx.get(server.url + "/lab/")
    policy = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'self'" in policy
    assert "object-src 'none'" in policy
    assert response.headers.get("x-frame-options") == "SAMEORIGIN"
