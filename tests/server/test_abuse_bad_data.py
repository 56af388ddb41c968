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
from websockets.sync.client import connect

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.wire.sse import SSEDecoder
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
        self.publisher = self._sockets.enter_context(connect(url, subprotocols=["pyrt.v1"]))  # type: ignore[list-item]
        json.loads(self.publisher.recv(timeout=5))
        self.subscriber = self._sockets.enter_context(connect(url, subprotocols=["pyrt.v1"]))  # type: ignore[list-item]
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
        pytest.skip("the fuzz test did not run")
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
