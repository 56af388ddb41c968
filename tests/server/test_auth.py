"""Tokens (HMAC + expiry) and the Origin allow-list, as functions and against a real server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx
import pytest
import websockets

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import (
    OriginCheck,
    check_origin,
    make_token,
    origin_allowed,
    request_token,
    token_from_scope,
    verify_token,
)
from tests import REPO
from tests.server.test_sse_endpoint import open_stream
from tests.server.wsclient import Client, run

SECRET = "s3cret-for-tests"


def test_a_token_verifies_until_it_expires() -> None:
    token = make_token(SECRET, "alice", ttl=60, now=1000)
    claims = verify_token(SECRET, token, now=1059)
    assert claims is not None
    assert claims.subject == "alice"
    assert verify_token(SECRET, token, now=1060) is None


def test_a_tampered_or_foreign_token_is_refused() -> None:
    token = make_token(SECRET, "alice", now=1000)
    payload, signature = token.split(".")
    forged = make_token("other secret", "admin", now=1000)
    assert verify_token(SECRET, forged.split(".")[0] + "." + signature, now=1001) is None
    assert verify_token("other secret", token, now=1001) is None
    assert verify_token(SECRET, payload + "." + signature[:-2] + "AA", now=1001) is None
    for junk in ("", "x", "a.b.c", "é.é", None):
        assert verify_token(SECRET, junk, now=1001) is None


def test_tokens_are_found_in_headers_cookies_and_subprotocols_but_not_urls() -> None:
    header = {"type": "http", "headers": [(b"authorization", b"Bearer abc.def")]}
    cookie = {"type": "http", "headers": [(b"cookie", b"theme=dark; pyrt_token=abc.def")]}
    protocol = {"type": "websocket", "headers": [], "subprotocols": ["pyrt.v1", "bearer.abc.def"]}
    url = {"type": "http", "headers": [], "query_string": b"token=abc.def"}
    assert [token_from_scope(s) for s in (header, cookie, protocol, url)] == ["abc.def"] * 3 + [None]


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        (None, [], True),
        ("http://app.example:8000", [], True),
        ("https://app.example:8000", [], False),
        ("http://evil.example", [], False),
        ("http://evil.example", ["http://evil.example"], True),
        ("http://evil.example", ["*"], True),
    ],
)
def test_origins(origin: str | None, allowed: list[str], expected: bool) -> None:
    headers = [(b"host", b"app.example:8000")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    assert origin_allowed({"type": "websocket", "scheme": "ws", "headers": headers}, allowed) is expected


@pytest.mark.parametrize(
    ("origin", "allowed", "credentials"),
    [
        (None, [], True),  # not a browser: no ambient credentials to abuse
        ("http://app.example:8000", ["*"], True),  # the server's own origin
        ("http://listed.example", ["http://listed.example", "*"], True),
        ("http://evil.example", ["*"], False),  # admitted by '*' only
    ],
)
def test_only_named_origins_may_use_credentials(
    origin: str | None, allowed: list[str], credentials: bool
) -> None:
    headers = [(b"host", b"app.example:8000"), (b"cookie", b"pyrt_token=abc.def")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "http", "scheme": "http", "headers": headers}
    assert check_origin(scope, allowed) == OriginCheck(True, credentials)
    assert request_token(scope, allowed) == ("abc.def" if credentials else None)


def test_make_token_from_the_command_line_verifies() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "serve.py"), "--token-secret", SECRET, "--make-token", "bob"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.strip()
    claims = verify_token(SECRET, out)
    assert claims is not None
    assert claims.subject == "bob"


def test_make_token_with_caps_from_the_command_line() -> None:
    caps = '[{"channels": ["chat"], "allow": ["subscribe"]}]'
    base = [sys.executable, str(REPO / "serve.py"), "--token-secret", SECRET, "--make-token", "bob"]
    out = subprocess.run([*base, "--token-caps", caps], capture_output=True, text=True, check=True, cwd=REPO)
    claims = verify_token(SECRET, out.stdout.strip())
    assert claims is not None
    assert [c.channels for c in claims.caps or ()] == [("chat",)]
    bad = subprocess.run(
        [*base, "--token-caps", '[{"channels": ["chat"]}]'], capture_output=True, text=True, cwd=REPO
    )
    assert bad.returncode == 2
    assert "--token-caps" in bad.stderr
    assert bad.stdout == ""


@pytest.fixture
def secured(pyrt_start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return pyrt_start_server("--demo-tick", "0", env={"PYRT_TOKEN_SECRET": SECRET})


def test_websocket_needs_a_valid_token_and_gets_4401_otherwise(secured: ServerProcess) -> None:
    good = make_token(SECRET, "alice")
    expired = make_token(SECRET, "alice", ttl=-10)

    async def scenario() -> None:
        for protocols in (["pyrt.v1"], ["pyrt.v1", f"bearer.{expired}"], ["pyrt.v1", "bearer.bad.token"]):
            ws = await websockets.connect(secured.ws_url + "/ws", subprotocols=protocols)  # type: ignore[arg-type]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
        client = await Client.connect(secured.ws_url, subprotocols=["pyrt.v1", f"bearer.{good}"])
        assert client.ws.subprotocol == "pyrt.v1"
        await client.send({"type": "ping", "t": 1})
        await client.expect("pong")
        await client.close()
        # What pyrt's clients offer: batches first, then pyrt.v1, then the token.
        offered = ["pyrt.v1.batch", "pyrt.v1", f"bearer.{good}"]
        batching = await Client.connect(secured.ws_url, subprotocols=offered)
        assert batching.ws.subprotocol == "pyrt.v1.batch"
        await batching.send({"type": "ping", "t": 2})
        await batching.expect("pong")
        await batching.close()
        cookie = await Client.connect(secured.ws_url, additional_headers={"Cookie": f"pyrt_token={good}"})
        await cookie.close()

    run(scenario())


def test_sse_and_publish_need_a_bearer_token(secured: ServerProcess) -> None:
    good = make_token(SECRET, "alice")
    channel = f"a-{uuid.uuid4().hex[:8]}"
    assert httpx.get(secured.url + "/sse", params={"channel": channel}).status_code == 403
    bad = {"Authorization": "Bearer " + make_token(SECRET, "alice", ttl=-1)}
    assert httpx.get(secured.url + "/sse", params={"channel": channel}, headers=bad).status_code == 403
    assert httpx.post(secured.url + "/publish", json={"channel": channel, "data": 1}).status_code == 403
    auth = {"Authorization": f"Bearer {good}"}
    assert (
        httpx.post(secured.url + "/publish", json={"channel": channel, "data": 1}, headers=auth).status_code
        == 200
    )
    assert httpx.get(secured.url + "/healthz").status_code == 200

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            stream = await open_stream(
                client, secured.url, params={"channel": channel, "lastEventId": "0"}, headers=auth
            )
            assert [e.json() for e in await stream.next_events(1)] == [1]
            await stream.response.aclose()

    run(scenario())


def test_tokens_never_appear_in_the_server_log(secured: ServerProcess) -> None:
    token = make_token(SECRET, "carol")

    async def scenario() -> None:
        client = await Client.connect(secured.ws_url, "?cid=c", subprotocols=["pyrt.v1", f"bearer.{token}"])
        await client.send({"type": "message", "id": "m", "data": "x"})
        await client.expect("ack")
        await client.close()

    run(scenario())
    httpx.post(
        secured.url + "/publish",
        json={"channel": "c", "data": 1},
        headers={"Authorization": f"Bearer {token}"},
    )
    httpx.get(secured.url + "/sse", params={"channel": "c"}, headers={"Authorization": f"Bearer {token}x"})
    secured.stop()
    log = secured.log_text()  # stderr and stdout (the access log)
    assert "authentication is OFF" not in log
    assert "/ws" in log
    assert "/publish" in log
    assert token not in log
    assert token.split(".")[1] not in log
    assert SECRET not in log


def test_a_foreign_origin_never_gets_an_open_websocket(pyrt_server: ServerProcess) -> None:
    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(pyrt_server.ws_url + "/ws", origin="https://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        same = await Client.connect(pyrt_server.ws_url, origin=pyrt_server.url)
        await same.close()

    run(scenario())


def test_allowed_origins_are_accepted(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    open_to = pyrt_start_server("--allowed-origin", "https://app.example", "--demo-tick", "0")

    async def scenario() -> None:
        client = await Client.connect(open_to.ws_url, origin="https://app.example")
        await client.close()
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(open_to.ws_url + "/ws", origin="https://other.example")  # type: ignore[arg-type]

    run(scenario())
    with httpx.stream(
        "GET", open_to.url + "/sse", params={"channel": "x"}, headers={"Origin": "https://app.example"}
    ) as allowed:
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
