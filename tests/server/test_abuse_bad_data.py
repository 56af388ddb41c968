"""Bad data that breaks others: nothing a client sends can end another client's stream.

A lone surrogate (``"\\ud800"``) is valid JSON syntax but no UTF-8 text can carry it; NaN and
``1e999`` are not JSON. The server refuses them at every way in (``bad_frame``/``bad_json``, HTTP
400) and every accepted publication reaches every subscriber. The fuzz test sends arbitrary JSON
(surrogates, huge numbers, deep nesting, NaN) through every way in and checks what comes out.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import connect

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server import Settings, create_app
from pyrt.server.auth import make_token
from pyrt.wire.sse import SSEDecoder
from tests import skip_outside_ci
from tests.faults.scenario import emit
from tests.server.test_sse_endpoint import open_stream
from tests.server.wsclient import Client, run

SURROGATE_PUBLISH = '{"type":"publish","id":"p-bad","channel":"%s","data":"\\ud800"}'
SURROGATE_MESSAGE = '{"type":"message","id":"m-bad","data":{"\\udc00":1}}'


def test_a_lone_surrogate_is_refused_everywhere_and_ends_no_stream(pyrt_server: ServerProcess) -> None:
    channel = "surrogate-" + uuid.uuid4().hex[:8]

    async def scenario() -> dict[str, Any]:
        subscriber = await Client.connect(pyrt_server.ws_url)
        await subscriber.send({"type": "subscribe", "channel": channel, "since": "0"})
        await subscriber.expect("subscribed")
        publisher = await Client.connect(pyrt_server.ws_url)
        await publisher.send({"type": "publish", "id": "p-1", "channel": channel, "data": "before"})
        await publisher.expect("ack", id="p-1")
        await publisher.send(SURROGATE_PUBLISH % channel)
        refused_publish = await publisher.expect("error", id="p-bad")
        await publisher.send(SURROGATE_MESSAGE)
        refused_message = await publisher.expect("error", id="m-bad")
        async with httpx.AsyncClient(timeout=5) as http:
            escaped = await http.post(
                pyrt_server.url + "/publish",
                content=b'{"channel":"%s","data":"\\ud800"}' % channel.encode(),
                headers={"content-type": "application/json"},
            )
            raw = await http.post(  # a surrogate encoded as bytes (CESU-8): not UTF-8
                pyrt_server.url + "/publish",
                content=b'{"channel":"%s","data":"\xed\xa0\x80"}' % channel.encode(),
                headers={"content-type": "application/json"},
            )
            await publisher.send({"type": "ping", "t": 1})
            await publisher.expect("pong")  # the publisher's connection is fine
            await publisher.send({"type": "publish", "id": "p-2", "channel": channel, "data": "after"})
            await publisher.expect("ack", id="p-2")
            live = [p["data"] for p in await subscriber.publications(channel, 2)]
            stream = await open_stream(http, pyrt_server.url, params={"channel": channel, "lastEventId": "0"})
            events = await stream.next_events(2)
        await publisher.close()
        await subscriber.close()
        return {
            "refused_publish": refused_publish["code"],
            "refused_message": refused_message["code"],
            "http": [escaped.status_code, raw.status_code],
            "live": live,
            "resumed": [json.loads(event.data) for event in events],
        }

    result = run(scenario())
    emit("abuse.bad_data.surrogate", **result)
    assert result == {
        "refused_publish": "bad_frame",
        "refused_message": "bad_frame",
        "http": [400, 400],
        "live": ["before", "after"],
        "resumed": ["before", "after"],
    }


# --- fuzzing every way in -----------------------------------------------------------------------

BIG = "@@big@@"
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(blacklist_categories=()), max_size=20)  # surrogates included
    | st.sampled_from(["\ud800", "x\udc00y", "\ud83d\ude00", "\ud83d"])
    | st.just(BIG)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(blacklist_categories=()), max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
big_literals = st.sampled_from(["1" * 5000, "1e999", "-1e400", "[" * 3000 + "]" * 3000, "NaN", "Infinity"])


def to_text(value: Any, ascii_only: bool, big: str) -> str:
    """``value`` as JSON text (NaN and surrogates as Python writes them), with ``BIG`` replaced by
    a literal Python would never write (a 5000-digit number, 1e999, 3000 levels of nesting)."""
    return json.dumps(value, ensure_ascii=ascii_only).replace(json.dumps(BIG), big)


def strict_parse(text: str) -> tuple[bool, Any]:
    """What a strict JSON reader accepts: ``(True, value)`` or ``(False, None)``."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    try:
        value = json.loads(text, parse_constant=refuse)
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError):
        return False, None
    return True, value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


class Fuzzer:
    """A publisher and a subscriber on ``/ws``, and an SSE reader that decodes strictly."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.channel = "fuzz-" + uuid.uuid4().hex[:8]
        self.http = httpx.Client(timeout=10)
        self._sockets = ExitStack()
        url = server.ws_url + "/ws"
        # Uncompressed: a fuzzed text of one repeated character deflates over 32 times, which the
        # server refuses (1009) as an inflation bomb by design (tested in test_abuse_memory); here
        # what is under test is how each text is validated, answered and delivered.
        plain = {"subprotocols": ["pyrt.v1"], "compression": None}
        self.publisher = self._sockets.enter_context(connect(url, **plain))  # type: ignore[arg-type]
        json.loads(self.publisher.recv(timeout=5))
        self.subscriber = self._sockets.enter_context(connect(url, **plain))  # type: ignore[arg-type]
        json.loads(self.subscriber.recv(timeout=5))
        self.subscriber.send(json.dumps({"type": "subscribe", "channel": self.channel}))
        assert json.loads(self.subscriber.recv(timeout=5))["type"] == "subscribed"
        self.accepted: list[tuple[str, Any]] = []  # (offset, data) of every accepted publication
        self.live: dict[str, Any] = {}
        self.sse: dict[str, Any] = {}
        self.sse_error: Exception | None = None
        self.examples = 0
        self.refusals: dict[str, int] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._read_live, daemon=True).start()
        self._sse_ready = threading.Event()
        threading.Thread(target=self._read_sse, daemon=True).start()
        assert self._sse_ready.wait(10)
        self._next = 0

    def next_id(self) -> str:
        self._next += 1
        return f"f-{self._next}"

    def _read_live(self) -> None:
        while not self._stop.is_set():
            try:
                frame = json.loads(self.subscriber.recv(timeout=0.5))
            except TimeoutError:
                continue
            except Exception:
                return
            if frame.get("type") == "publication":
                self.live[frame["offset"]] = frame["data"]

    def _read_sse(self) -> None:
        decoder = SSEDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        try:
            params = {"channel": self.channel}
            with self.http.stream("GET", self.server.url + "/sse", params=params) as response:
                assert response.status_code == 200
                self._sse_ready.set()
                for chunk in response.iter_bytes():
                    utf8.decode(chunk)  # raises on anything that is not UTF-8
                    for event in decoder.feed(chunk):
                        if event.id:
                            self.sse[event.id] = json.loads(event.data)
                    if self._stop.is_set():
                        return
        except Exception as exc:  # reported by the test
            if not self._stop.is_set():
                self.sse_error = exc

    def answers(self, mark: str) -> list[dict[str, Any]]:
        """The publisher's frames up to the ``pong`` for ``mark`` (frames are answered in order)."""
        self.publisher.send(json.dumps({"type": "ping", "t": mark}))
        frames = []
        while True:
            frame: dict[str, Any] = json.loads(self.publisher.recv(timeout=10))
            if frame == {"type": "pong", "t": mark}:
                return frames
            frames.append(frame)

    def refused(self, code: str) -> None:
        self.refusals[code] = self.refusals.get(code, 0) + 1

    def close(self) -> None:
        self._stop.set()
        self._sockets.close()
        self.http.close()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerProcess]:
    # No frame rate limit: the fuzzer sends frames back to back to test validation, not pacing.
    proc = ServerProcess("--rate-limit", "0")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def fuzzer(fuzz_server: ServerProcess) -> Iterator[Fuzzer]:
    fuzz = Fuzzer(fuzz_server)
    yield fuzz
    fuzz.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    way=st.sampled_from(["ws_publish", "ws_message", "http_publish", "raw_frame"]),
    value=json_values,
    ascii_only=st.booleans(),
    big=big_literals,
    raw=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
)
def test_fuzzed_ingress_is_answered_and_every_accepted_publication_reaches_everyone(
    fuzzer: Fuzzer, way: str, value: Any, ascii_only: bool, big: str, raw: str
) -> None:
    fuzzer.examples += 1
    data = to_text(value, ascii_only, big)
    mark = fuzzer.next_id()
    if way == "raw_frame":
        fuzzer.publisher.send(raw)
        answers = fuzzer.answers(mark)  # and the connection still answers
        assert all(frame["type"] == "error" for frame in answers), answers
        return
    if way == "http_publish":
        valid, parsed = strict_parse(data)
        body = f'{{"channel":"{fuzzer.channel}","data":{data}}}'.encode("utf-8", "surrogatepass")
        response = fuzzer.http.post(
            fuzzer.server.url + "/publish", content=body, headers={"content-type": "application/json"}
        )
        if not valid:
            assert response.status_code in (400, 413), (data[:80], response.status_code)
            fuzzer.refused(f"http_{response.status_code}")
            return
        assert response.status_code == 200, (data[:80], response.text)
        fuzzer.accepted.append((response.json()["offset"], parsed))
        return
    kind = "publish" if way == "ws_publish" else "message"
    channel = f',"channel":"{fuzzer.channel}"' if kind == "publish" else ""
    text = f'{{"type":"{kind}","id":"{mark}"{channel},"data":{data}}}'
    wire = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # what a WebSocket carries
    if len(wire.encode()) > 1024 * 1024:
        return
    valid, frame = strict_parse(wire)
    fuzzer.publisher.send(wire)
    answers = fuzzer.answers(mark + "-done")
    assert len(answers) == 1, answers
    answer = answers[0]
    if not valid:
        assert answer["type"] == "error", (data[:80], answer)
        assert answer["code"] in ("bad_json", "bad_frame"), answer
        fuzzer.refused(answer["code"])
        return
    assert answer["type"] == "ack", (data[:80], answer)
    assert answer["ok"] is True, answer
    if kind == "message":
        assert same(answer["data"], frame["data"]), (answer, frame)
    else:
        fuzzer.accepted.append((answer["data"]["offset"], frame["data"]))


def test_after_the_fuzz_every_stream_is_alive_and_complete(fuzzer: Fuzzer) -> None:
    if not fuzzer.examples:
        skip_outside_ci("the fuzz test did not run")
    sentinel = fuzzer.http.post(
        fuzzer.server.url + "/publish", json={"channel": fuzzer.channel, "data": "sentinel"}
    ).json()["offset"]
    deadline = time.monotonic() + 10
    while sentinel not in fuzzer.live or sentinel not in fuzzer.sse:
        assert fuzzer.sse_error is None, fuzzer.sse_error
        assert time.monotonic() < deadline, "the sentinel did not reach both subscribers"
        time.sleep(0.02)
    missing_live = [o for o, _ in fuzzer.accepted if o not in fuzzer.live]
    missing_sse = [o for o, _ in fuzzer.accepted if o not in fuzzer.sse]
    wrong = [o for o, v in fuzzer.accepted if not same(fuzzer.live.get(o), v)]
    emit(
        "abuse.bad_data.fuzz",
        examples=fuzzer.examples,
        accepted=len(fuzzer.accepted),
        refused=fuzzer.refusals,
        missing_live=len(missing_live),
        missing_sse=len(missing_sse),
    )
    assert (missing_live, missing_sse, wrong) == ([], [], [])
    assert fuzzer.sse_error is None
    assert "Traceback" not in fuzzer.server.log_text()


# --- headers and tokens: bad input is refused, never a 500 or a traceback -----------------------

SECRET = "bad-data-secret"


def raw_status(port: int, head: bytes) -> int | None:
    """The status of one raw request (``None``: the connection closed without an answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n" not in answer:
            piece = sock.recv(4096)
            if not piece:
                return None
            answer += piece
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    assert match, answer[:200]
    return int(match.group(1))


def request(port: int, path: str, *headers: bytes) -> bytes:
    upgrade = any(h.lower().startswith(b"upgrade:") for h in headers)
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
        + b"".join(h + b"\r\n" for h in headers)
        + (b"" if upgrade else b"Connection: close\r\n")
        + b"\r\n"
    )


WS_HEAD = (
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Version: 13",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
)


@pytest.fixture(scope="module")
def secured() -> Iterator[ServerProcess]:
    proc = ServerProcess("--token-secret", SECRET)  # authentication on, every other default
    yield proc
    proc.stop()


def test_bad_origins_and_tokens_are_refused_without_a_traceback(secured: ServerProcess) -> None:
    port = secured.port
    token = make_token(SECRET, "alice")
    payload, signature = token.split(".")
    bad = f"{payload}.{signature[:-1]}".encode() + b"\xe9"  # a byte that is not ASCII
    statuses = {
        "origin_ipv6_ipv4": raw_status(port, request(port, "/sse?channel=c", b"Origin: http://[1.2.3.4]")),
        "origin_bracket": raw_status(port, request(port, "/history?channel=c", b"Origin: http://[")),
        "ws_origin": raw_status(port, request(port, "/ws", *WS_HEAD, b"Origin: http://[")),
        "bearer": raw_status(port, request(port, "/sse?channel=c", b"Authorization: Bearer " + bad)),
        "cookie": raw_status(port, request(port, "/history?channel=c", b"Cookie: pyrt_token=" + bad)),
        "subprotocol": raw_status(
            port, request(port, "/ws", *WS_HEAD, b"Sec-WebSocket-Protocol: pyrt.v1, bearer." + bad)
        ),
    }

    async def refresh() -> tuple[dict[str, Any], dict[str, Any]]:
        client = await Client.connect(secured.ws_url, subprotocols=["pyrt.v1", "bearer." + token])
        await client.send({"type": "refresh", "id": "r1", "token": bad.decode("latin-1")})
        refused = await client.expect("error", id="r1")
        await client.send({"type": "ping", "t": 1})
        pong = await client.expect("pong")  # the connection is still there
        await client.close()
        return refused, pong

    refused, pong = run(refresh())
    emit("abuse.bad_data.headers_and_tokens", **statuses, refresh=refused["code"])
    assert statuses == {
        "origin_ipv6_ipv4": 403,
        "origin_bracket": 403,
        "ws_origin": 403,
        "bearer": 403,
        "cookie": 403,
        "subprotocol": 400,  # not a valid subprotocol token: the handshake is refused
    }
    assert refused["code"] == "unauthorized"
    assert pong == {"type": "pong", "t": 1}
    log = secured.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert " 500" not in log


VALID = make_token(SECRET, "alice").encode()
header_bytes = (
    st.binary(max_size=60)
    | st.builds(  # a valid token with one byte changed
        lambda at, byte: VALID[:at] + bytes([byte]) + VALID[at + 1 :],
        st.integers(0, len(VALID) - 1),
        st.integers(1, 255),
    )
)
HEADERS = {
    b"Origin": [b"", b"http://", b"http://[", b"https://", b"null"],
    b"Host": [b"", b"[", b"127.0.0.1:"],
    b"Authorization": [b"Bearer ", b"bearer ", b"Basic "],
    b"Cookie": [b"pyrt_token=", b"a=b; pyrt_token="],
    b"Sec-WebSocket-Protocol": [b"pyrt.v1, bearer.", b""],
    b"Last-Event-ID": [b""],
    b"Accept-Encoding": [b""],
}
headers = st.sampled_from(sorted(HEADERS)).flatmap(
    lambda name: st.tuples(st.just(name), st.sampled_from(HEADERS[name]), header_bytes)
)
token_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60) | header_bytes.map(
    lambda raw: raw.decode("latin-1")
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/sse?channel=c", "/history?channel=c", "/publish", "/ws", "/healthz"]),
    header=headers,
)
def test_fuzzed_headers_never_get_a_500(secured: ServerProcess, path: str, header: tuple[bytes, ...]) -> None:
    port = secured.port
    name, prefix, value = header
    extra = WS_HEAD if path == "/ws" else ()
    head = request(port, path, *extra, name + b": " + prefix + value.replace(b"\r", b"").replace(b"\n", b""))
    if name == b"Host":  # replaces the request's own
        head = head.replace(f"Host: 127.0.0.1:{port}\r\n".encode(), b"", 1)
    status = raw_status(port, head)
    assert status is None or status < 500, (name, prefix + value, status)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(token=token_text)
def test_fuzzed_refresh_tokens_are_answered_unauthorized(refresher: Any, token: str) -> None:
    client, mark = refresher
    mark[0] += 1
    client.send(json.dumps({"type": "refresh", "id": f"r{mark[0]}", "token": token}))
    answer = json.loads(client.recv(timeout=10))
    assert answer["type"] == "error", answer
    assert answer["code"] in ("unauthorized", "rate_limited"), answer


@pytest.fixture(scope="module")
def refresher() -> Iterator[Any]:
    # No refresh rate limit: the fuzzer sends refreshes back to back to test their parsing.
    proc = ServerProcess("--token-secret", SECRET, "--refresh-rate", "0")
    token = make_token(SECRET, "alice")
    try:
        with connect(proc.ws_url + "/ws", subprotocols=["pyrt.v1", "bearer." + token]) as client:  # type: ignore[list-item]
            json.loads(client.recv(timeout=5))
            yield client, [0]
            client.send(json.dumps({"type": "ping", "t": "end"}))
            assert json.loads(client.recv(timeout=5)) == {"type": "pong", "t": "end"}
        log = proc.log_text()
        assert "Traceback" not in log, log[-3000:]
    finally:
        proc.stop()


def test_after_the_header_fuzz_the_log_has_no_traceback(secured: ServerProcess) -> None:
    log = secured.log_text()
    assert "Traceback" not in log, log[-3000:]


def test_a_frame_the_server_fails_on_closes_its_connection_with_1011_and_a_close_frame() -> None:
    def broken_policy(channel: str, subject: str | None, action: str) -> bool:
        raise RuntimeError("a bug in the application's policy")

    app = create_app(Settings(allowed_hosts=("testserver",)), channel_policy=broken_policy)
    with TestClient(app) as client, client.websocket_connect("/ws", subprotocols=["pyrt.v1"]) as ws:
        ws.receive_json()  # welcome
        ws.send_json({"type": "subscribe", "channel": "c"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1011
