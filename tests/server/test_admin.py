"""/admin/trace and /admin/connections on a real server: never open, one channel or user only, bounded."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from pyrt.wire.sse import SSEDecoder
from tests.server.wsclient import Client, run

ADMIN = secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {ADMIN}"}
TIMEOUT = 10.0


class Trace:
    """A reader of /admin/trace: events in order, waited for with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.decoder = SSEDecoder()
        self.events: list[dict[str, Any]] = []
        self._chunks = response.aiter_raw()

    async def until(
        self, wanted: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if wanted(event):
                    return event
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such trace event within {timeout}s; got {self.events}")
            chunk = await asyncio.wait_for(anext(self._chunks), left)
            for sse in self.decoder.feed(chunk):
                if sse.type == "trace":
                    self.events.append(json.loads(sse.data))


async def open_trace(http: httpx.AsyncClient, query: str) -> Trace:
    request = http.build_request("GET", f"/admin/trace?{query}", headers=AUTH)
    response = await http.send(request, stream=True)
    assert response.status_code == 200, response.status_code
    assert response.headers["content-type"].startswith("text/event-stream")
    return Trace(response)


def test_the_admin_endpoints_are_not_there_without_an_admin_token(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0")
    for path in ("/admin/trace?channel=chat", "/admin/connections"):
        assert httpx.get(srv.url + path).status_code == 404
        assert httpx.get(srv.url + path, headers={"Authorization": "Bearer anything"}).status_code == 404


def test_a_missing_or_wrong_token_is_refused_and_guessing_is_rate_limited(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0", "--admin-token", ADMIN)
    assert httpx.get(srv.url + "/admin/connections", headers=AUTH).status_code == 200
    bare = httpx.get(srv.url + "/admin/trace?channel=chat")
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"].startswith("Bearer")
    wrong = {"Authorization": f"Bearer {ADMIN[:-1]}x"}
    assert httpx.get(srv.url + "/admin/trace?channel=chat", headers=wrong).status_code == 401
    with httpx.Client(base_url=srv.url) as http:  # one kept-alive connection: quick guesses
        codes = [http.get("/admin/connections", headers=wrong).status_code for _ in range(30)]
    assert codes[-1] == 429, codes  # a burst of ten per address, then two per second
    assert set(codes) == {401, 429}
    assert codes.count(401) < 20


def test_a_channel_trace_shows_that_channel_only_with_offsets_acks_and_sizes_not_data(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0", "--admin-token", ADMIN)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as http:
            trace = await open_trace(http, "channel=room-a")
            client = await Client.connect(srv.ws_url)
            await client.send({"type": "subscribe", "channel": "room-a"})
            await client.expect("subscribed")
            await client.send({"type": "publish", "channel": "room-b", "id": "b1", "data": "secret-b"})
            await client.expect("ack", id="b1")
            await client.send({"type": "publish", "channel": "room-a", "id": "a1", "data": "secret-a"})
            ack = await client.expect("ack", id="a1")
            publication = await trace.until(lambda e: e["event"] == "publication")
            assert publication["channel"] == "room-a"
            assert publication["offset"] == ack["data"]["offset"]
            assert publication["bytes"] == len('"secret-a"')
            assert "data" not in publication
            kinds = [e["event"] for e in trace.events]
            assert kinds[:3] == ["subscribe", "subscribed", "publish"], kinds
            assert all(e.get("channel") in (None, "room-a") for e in trace.events)
            assert "secret" not in json.dumps(trace.events)
            await client.close()
            await trace.response.aclose()

    run(scenario())


def test_a_user_trace_follows_that_subject_from_connect_to_disconnect(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    secret = secrets.token_urlsafe(16)
    srv = pyrt_start_server("--demo-tick", "0", "--admin-token", ADMIN, "--token-secret", secret)

    def bearer(user: str) -> list[str]:
        return ["pyrt.v1", f"bearer.{make_token(secret, user, 600)}"]

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as http:
            trace = await open_trace(http, "user=alice")
            bob = await Client.connect(srv.ws_url, subprotocols=bearer("bob"))
            await bob.send({"type": "message", "id": "bob-1", "data": 1})
            await bob.expect("ack")
            alice = await Client.connect(srv.ws_url, subprotocols=bearer("alice"))
            await alice.send({"type": "message", "id": "alice-1", "data": {"x": 1}})
            await alice.expect("ack")
            await trace.until(lambda e: e["event"] == "ack")
            await alice.close()
            await trace.until(lambda e: e["event"] == "disconnect")
            kinds = [(e["event"], e.get("id")) for e in trace.events]
            assert kinds == [
                ("connect", None),
                ("welcome", None),
                ("message", "alice-1"),
                ("ack", "alice-1"),
                ("disconnect", None),
            ]
            assert {e["user"] for e in trace.events} == {"alice"}
            assert {e["session"] for e in trace.events} == {alice.session}
            await bob.close()
            await trace.response.aclose()
            # A reader that goes away is detached: nothing is kept for it.
            deadline = time.monotonic() + TIMEOUT
            while (await http.get("/admin/connections", headers=AUTH)).json()["traces"]:
                assert time.monotonic() < deadline, "the closed trace is still attached"
                await asyncio.sleep(0.5)  # admin requests: two per second per address

    run(scenario())


def test_connections_lists_who_is_connected_with_transport_channels_and_since(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0", "--admin-token", ADMIN)

    async def scenario() -> None:
        client = await Client.connect(srv.ws_url)
        await client.send({"type": "subscribe", "channel": "lobby"})
        await client.expect("subscribed")
        async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as http:
            listing = (await http.get("/admin/connections", headers=AUTH)).json()
        (row,) = listing["connections"]
        assert row["session"] == client.session
        assert row["transport"] == "ws"
        assert row["channels"] == ["lobby"]
        assert row["address"] == "127.0.0.1"
        assert abs(row["since"] - time.time()) < 60
        assert row["queued_bytes"] >= 0
        await client.close()

    run(scenario())


def test_a_trace_reader_that_does_not_read_is_bounded_and_told_what_it_missed(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    srv = pyrt_start_server("--demo-tick", "0", "--admin-token", ADMIN, "--trace-queue", "50")

    async def scenario() -> None:
        # A raw reader with a tiny receive buffer that reads nothing after the headers.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        slow.connect(("127.0.0.1", srv.port))
        slow.sendall(
            f"GET /admin/trace?channel=flood HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {ADMIN}\r\n\r\n".encode()
        )
        async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as http:
            deadline = time.monotonic() + 30
            while not (await http.get("/admin/connections", headers=AUTH)).json()["traces"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.5)  # admin requests: two per second per address
            client = await Client.connect(srv.ws_url)
            await client.send({"type": "subscribe", "channel": "flood"})
            await client.expect("subscribed")
            # An offset the server refuses, in full, in its answer: two big trace events per frame.
            since = "1-" + "0" * 6000
            dropped = 0
            while dropped == 0:
                assert time.monotonic() < deadline, "the slow reader never dropped an event"
                for _ in range(40):  # under the 200 frames/s a connection may send
                    await client.send({"type": "subscribe", "channel": "flood", "since": since})
                for _ in range(40):
                    await client.expect("error", code="bad_frame")
                await asyncio.sleep(0.5)
                (reader,) = (await http.get("/admin/connections", headers=AUTH)).json()["traces"]
                assert reader["queued"] <= reader["limit"] == 50
                dropped = reader["dropped"]
            await client.close()
        slow.close()

    run(scenario())


def test_a_channel_trace_reads_the_binary_binding_as_it_reads_json(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    import msgpack
    import websockets

    srv = pyrt_start_server("--demo-tick", "0", "--admin-token", ADMIN)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=srv.url, timeout=TIMEOUT) as http:
            trace = await open_trace(http, "channel=room-bin")
            async with websockets.connect(f"{srv.ws_url}/ws", subprotocols=["pyrt.v1.msgpack"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "pyrt.v1.msgpack"
                frame = {"type": "publish", "channel": "room-bin", "id": "p1", "data": b"\x00\xffraw"}
                await ws.send(msgpack.packb(frame, use_bin_type=True))
                while True:
                    reply = msgpack.unpackb(await asyncio.wait_for(ws.recv(), TIMEOUT), raw=False)
                    if reply.get("type") == "ack":
                        break
                await trace.until(lambda e: e["event"] == "publication")
            publish = next(e for e in trace.events if e["event"] == "publish")  # read from MessagePack
            assert (publish["channel"], publish["id"]) == ("room-bin", "p1")
            publication = next(e for e in trace.events if e["event"] == "publication")
            assert (publication["channel"], publication["offset"]) == ("room-bin", reply["data"]["offset"])
            assert "\\u0000" not in json.dumps(trace.events)  # sizes, not data
            await trace.response.aclose()

    run(scenario())
