"""Other users' data and controls: one client never reads or steers what belongs to another.

The attacker speaks from 127.0.0.1, the victim from 127.0.0.2 (another loopback address: another
client to the server); with authentication, identities are token subjects.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from pyrt.engine.close_policy import TOKEN_EXPIRED, CloseInfo, default_should_reconnect
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from tests import REPO
from tests.faults.scenario import emit
from tests.server.test_sse_endpoint import open_stream
from tests.server.wsclient import Client, run

VICTIM = "127.0.0.2"
SECRET = "isolation-secret"


def victim_http() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=VICTIM), timeout=10)


def bearer(subject: str, ttl: float = 3600) -> str:
    return "bearer." + make_token(SECRET, subject, ttl)


def test_message_ids_are_scoped_per_client_address(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    server = pyrt_start_server()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        victim = await Client.connect(server.ws_url, local_addr=(VICTIM, 0))
        attacker = await Client.connect(server.ws_url)
        await victim.send({"type": "message", "id": "order-1", "data": "the victim's secret"})
        victims = await victim.expect("ack", id="order-1")
        await attacker.send({"type": "message", "id": "order-1", "data": "guess"})
        attackers = await attacker.expect("ack", id="order-1")
        await victim.send({"type": "message", "id": "order-1", "data": "the victim's secret"})
        retry = await victim.expect("ack", id="order-1")
        await victim.close()
        await attacker.close()
        return victims, attackers, retry

    victims, attackers, retry = run(scenario())
    emit("abuse.isolation.message_ids", attacker_got=attackers.get("data"))
    assert victims["data"] == "the victim's secret"
    assert attackers["data"] == "guess"  # its own message, handled for it: nothing of the victim's
    assert retry == victims  # the victim's retry is still deduplicated
    assert server.metric("pyrt_dedup_hits_total", kind="message") == 1


def test_message_ids_are_scoped_per_token_subject(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    server = pyrt_start_server("--token-secret", SECRET)

    async def scenario() -> Any:
        alice = await Client.connect(server.ws_url, subprotocols=["pyrt.v1", bearer("alice")])
        mallory = await Client.connect(server.ws_url, subprotocols=["pyrt.v1", bearer("mallory")])
        await alice.send({"type": "message", "id": "k1-1", "data": {"card": "4111"}})
        await alice.expect("ack", id="k1-1")
        await mallory.send({"type": "message", "id": "k1-1", "data": None})
        stolen = await mallory.expect("ack", id="k1-1")
        await alice.close()
        await mallory.close()
        return stolen["data"]

    assert run(scenario()) is None  # mallory's own (empty) message, not alice's card


def test_publish_ids_are_scoped_per_identity_and_channel(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server()

    async def scenario() -> list[dict[str, Any]]:
        victim = await Client.connect(server.ws_url, local_addr=(VICTIM, 0))
        attacker = await Client.connect(server.ws_url)
        answers = []
        for client, channel in ((victim, "news"), (attacker, "news"), (victim, "other")):
            await client.send({"type": "publish", "id": "pub-1", "channel": channel, "data": channel})
            answers.append(await client.expect("ack", id="pub-1"))
        await victim.close()
        await attacker.close()
        return answers

    answers = run(scenario())
    offsets = [answer["data"]["offset"] for answer in answers]
    assert len(set(offsets)) == 3  # three publications: nothing dropped, nobody got another's offset


def test_one_identity_cannot_flush_another_ones_message_ids(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # The quota and the window are scaled down (10,000 / 100,000 by default) so that the flood
    # needs 1,500 messages instead of 110,000; the rule under test is the same.
    server = pyrt_start_server("--dedup-per-identity", "100", "--dedup-max", "1000")

    async def scenario() -> float:
        victim = await Client.connect(server.ws_url, local_addr=(VICTIM, 0))
        await victim.send({"type": "message", "id": "v-1", "data": "pay 10 EUR"})
        await victim.expect("ack", id="v-1")
        attackers = [await Client.connect(server.ws_url) for _ in range(4)]
        started = time.monotonic()
        for n, attacker in enumerate(attackers):
            for m in range(375):
                await attacker.send({"type": "message", "id": f"flood-{n}-{m}"})
        for attacker in attackers:
            for _ in range(375):
                await attacker.expect("ack", timeout=30)
            await attacker.close()
        flooded = time.monotonic() - started
        await victim.send({"type": "message", "id": "v-1", "data": "pay 10 EUR"})
        await victim.expect("ack", id="v-1")
        await victim.close()
        return flooded

    seconds = run(scenario())
    hits = server.metric("pyrt_dedup_hits_total", kind="message")
    emit("abuse.isolation.flush", flood_ids=1500, flood_s=seconds, victim_retry_deduplicated=hits == 1)
    assert hits == 1  # the victim's retry was recognised: its payment ran once


def test_demo_mode_is_opt_in_and_refused_with_authentication(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    plain = pyrt_start_server()
    assert httpx.get(plain.url + "/healthz").json() == {"status": "ok", "demo": False}
    assert httpx.post(plain.url + "/demo/drop", json={"cid": "x"}).status_code in (404, 405)
    refused = subprocess.run(
        [sys.executable, str(REPO / "serve.py"), "--port", "0", "--demo", "--token-secret", "s"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "demo mode cannot be combined with a token secret" in refused.stderr


def test_demo_controls_reach_only_the_callers_own_connections(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server("--demo", "--demo-tick", "0")
    cid = "victim-" + uuid.uuid4().hex[:8]

    async def scenario() -> dict[str, Any]:
        victim = await Client.connect(server.ws_url, f"?cid={cid}", local_addr=(VICTIM, 0))
        await victim.send({"type": "message", "id": "secret-1", "data": "my diary"})
        await victim.expect("ack", id="secret-1")
        attacker = await Client.connect(server.ws_url)
        async with httpx.AsyncClient(timeout=10) as http, victim_http() as own:
            dropped = (await http.post(server.url + "/demo/drop", json={"cid": cid})).json()
            by_session = {"session": victim.session}
            dropped_by_session = (await http.post(server.url + "/demo/drop", json=by_session)).json()
            stalled = (await http.post(server.url + "/demo/stall", json={"cid": cid, "seconds": 60})).json()
            read = (await http.get(server.url + "/demo/received", params={"cid": cid})).json()
            own_read = (await own.get(server.url + "/demo/received", params={"cid": cid})).json()
        await attacker.send({"type": "subscribe", "channel": f"_received.{cid}"})
        subscribe = await attacker.expect("error")
        await attacker.send({"type": "publish", "id": "fake-tick", "channel": "feed", "data": {"n": -1}})
        feed = await attacker.expect("error", id="fake-tick")
        await victim.send({"type": "ping", "t": 1})
        await victim.expect("pong", timeout=3)  # neither dropped nor stalled
        await victim.close()
        await attacker.close()
        return {
            "dropped": [dropped, dropped_by_session],
            "stalled": stalled,
            "read": read,
            "own_read": own_read,
            "subscribe": subscribe["code"],
            "feed": feed["code"],
        }

    result = run(scenario())
    emit("abuse.isolation.demo", **result)
    assert result == {
        "dropped": [{"dropped": 0}, {"dropped": 0}],
        "stalled": {"stalled": 0},
        "read": {"messages": []},
        "own_read": {"messages": [{"id": "secret-1", "data": "my diary"}]},
        "subscribe": "forbidden",
        "feed": "forbidden",
    }


def raw_status(port: int, host: str, path: str = "/healthz", extra: str = "") -> int:
    """The status line of one request sent with this exact ``Host`` header."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        connection = "" if "Upgrade" in extra else "Connection: close\r\n"
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}{connection}\r\n".encode())
        head = sock.recv(200).decode("latin-1")
    match = re.match(r"HTTP/1\.1 (\d{3})", head)
    assert match, head
    return int(match.group(1))


WS_UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: pyrt.v1\r\n"
)


def test_hosts_that_are_not_this_server_are_refused(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    server = pyrt_start_server()
    named = pyrt_start_server("--allowed-host", ".app.example")
    port, other = server.port, named.port
    rebinding = {
        "healthz": raw_status(port, f"evil.example:{port}"),
        "sse": raw_status(port, f"evil.example:{port}", "/sse?channel=x"),
        "ws": raw_status(port, f"evil.example:{port}", "/ws", WS_UPGRADE),
        "origin_matches_host": raw_status(
            port, f"evil.example:{port}", "/ws", WS_UPGRADE + f"Origin: http://evil.example:{port}\r\n"
        ),
    }
    allowed = {
        "ip": raw_status(port, f"127.0.0.1:{port}"),
        "localhost": raw_status(port, f"localhost:{port}"),
        "ipv6": raw_status(port, f"[::1]:{port}"),
        "listed": raw_status(other, f"app.example:{other}"),
        "subdomain": raw_status(other, f"rt.app.example:{other}"),
        "ws_listed": raw_status(other, f"app.example:{other}", "/ws", WS_UPGRADE),
    }
    elsewhere = raw_status(other, f"app.example.evil:{other}")
    emit("abuse.isolation.hosts", rebinding=rebinding, allowed=allowed)
    assert rebinding == {"healthz": 403, "sse": 403, "ws": 403, "origin_matches_host": 403}
    assert allowed == {
        "ip": 200,
        "localhost": 200,
        "ipv6": 200,
        "listed": 200,
        "subdomain": 200,
        "ws_listed": 101,
    }
    assert elsewhere == 403


def test_a_wildcard_origin_never_gets_credentials(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    server = pyrt_start_server("--allowed-origin", "*", "--token-secret", SECRET)
    token = make_token(SECRET, "alice")
    own = server.url
    foreign = "https://evil.example"

    def sse(origin: str, **headers: str) -> httpx.Response:
        with httpx.stream(
            "GET",
            server.url + "/sse",
            params={"channel": "c"},
            headers={"Origin": origin, **headers},
            timeout=10,
        ) as response:
            return response

    cookie = sse(foreign, Cookie=f"pyrt_token={token}")
    header = sse(foreign, Authorization=f"Bearer {token}")
    same = sse(own, Cookie=f"pyrt_token={token}")
    publish = httpx.post(
        server.url + "/publish",
        json={"channel": "c", "data": 1},
        headers={"Origin": foreign, "Cookie": f"pyrt_token={token}"},
    )

    async def websocket_with_cookie() -> int | None:
        client = await websockets.connect(
            server.ws_url + "/ws",
            subprotocols=["pyrt.v1"],  # type: ignore[list-item]
            origin=foreign,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"pyrt_token={token}"},
        )
        try:
            await asyncio.wait_for(client.recv(), 5)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        return None

    ws_code = run(websocket_with_cookie())
    emit("abuse.isolation.wildcard", cookie=cookie.status_code, header=header.status_code, ws=ws_code)
    assert cookie.status_code == 403  # a cookie never authenticates a page from any origin
    assert publish.status_code == 403
    assert ws_code == 4401
    assert header.status_code == 200
    assert header.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in header.headers
    assert same.status_code == 200
    assert same.headers.get("access-control-allow-origin") == own
    assert same.headers.get("access-control-allow-credentials") == "true"


def test_a_live_connection_is_closed_with_4001_when_its_token_expires(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    server = pyrt_start_server("--token-secret", SECRET)
    token = make_token(SECRET, "alice", ttl=2)

    async def scenario() -> tuple[int | None, bool, float]:
        started = time.monotonic()
        client = await Client.connect(server.ws_url, subprotocols=["pyrt.v1", "bearer." + token])
        code = await client.close_code(timeout=15)
        async with httpx.AsyncClient(timeout=15) as http:
            fresh = make_token(SECRET, "alice", ttl=2)
            stream = await open_stream(
                http, server.url, params={"channel": "c"}, headers={"Authorization": f"Bearer {fresh}"}
            )
            ended = False
            try:
                await stream.read_until(lambda s: False, timeout=15)
            except (StopAsyncIteration, httpx.HTTPError):
                ended = True
        return code, ended, time.monotonic() - started

    code, sse_ended, seconds = run(scenario())
    emit("abuse.isolation.token_expiry", ws_close=code, sse_ended=sse_ended, seconds=seconds)
    assert code == TOKEN_EXPIRED == 4001
    assert default_should_reconnect(CloseInfo(code))  # the client comes back with a fresh token
    assert sse_ended


def test_echo_is_opt_in_and_checked_like_ws(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    default = pyrt_start_server()
    echo = pyrt_start_server("--echo", "--token-secret", SECRET)

    async def scenario() -> dict[str, Any]:
        results: dict[str, Any] = {}
        absent = await websockets.connect(default.ws_url + "/echo")  # off: closed, saying why
        with pytest.raises(websockets.ConnectionClosed) as off:
            await asyncio.wait_for(absent.recv(), 5)
        results["default"] = (off.value.rcvd.code, off.value.rcvd.reason) if off.value.rcvd else None
        with pytest.raises(websockets.InvalidStatus) as foreign:
            await websockets.connect(
                echo.ws_url + "/echo",
                origin="https://evil.example",  # type: ignore[arg-type]
            )
        results["foreign_origin"] = foreign.value.response.status_code
        anonymous = await websockets.connect(echo.ws_url + "/echo")
        try:
            await asyncio.wait_for(anonymous.recv(), 5)
        except websockets.ConnectionClosed as closed:
            results["no_token"] = closed.rcvd.code if closed.rcvd else None
        allowed = await websockets.connect(
            echo.ws_url + "/echo",
            subprotocols=[bearer("alice")],  # type: ignore[list-item]
        )
        await allowed.send("hello")
        results["echo"] = await asyncio.wait_for(allowed.recv(), 5)
        await allowed.close()
        return results

    results = run(scenario())
    assert results == {
        "default": (4404, "/echo is off: start serve.py with --echo"),
        "foreign_origin": 403,
        "no_token": 4401,
        "echo": "hello",
    }
