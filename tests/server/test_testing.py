"""``pyrt.testing.FakePyrtServer`` stays truthful: the same frame scripts run against it and
against a real ``serve.py`` (default settings, memory broker), and the answers must be the same,
on both bindings: JSON text (``pyrt.v1``) and MessagePack (``pyrt.v1.msgpack``, where the script's
frames are sent as MessagePack maps and the answers read back from MessagePack).

Answers are compared after normalising what legitimately differs between two servers: session ids
and server names, the announced heartbeat interval (the limits ``welcome`` advertises must be the
same), error texts (their ``code`` and ``id`` must match), and offset values (replaced by their
order of appearance: ``o1``, ``o2``... so the *relations* between offsets must match). Each script
frame's answers are read up to a ``ping`` sentinel, so a server that answers too much or too little
fails.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import websockets

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.settings import Settings
from pyrt.testing import FakePyrtServer, ServerConnection
from tests.server.wsclient import Client

Frame = dict[str, Any] | str | bytes
Script = list[Frame]

SCRIPTS: dict[str, Script] = {
    "ping answers pong, with t and without": [
        {"type": "ping", "t": 1234},
        {"type": "ping"},
    ],
    "an acked message is handled once per id; fire-and-forget is echoed": [
        {"type": "message", "id": "{id1}", "data": {"n": 1}},
        {"type": "message", "id": "{id1}", "data": {"n": 1}},
        {"type": "message", "id": "{id2}", "data": [1, "two"]},
        {"type": "message", "data": "echo me"},
    ],
    "publish acks with an offset, once per id; without id nothing is answered": [
        {"type": "publish", "id": "{id1}", "channel": "{ch}", "data": 1},
        {"type": "publish", "id": "{id1}", "channel": "{ch}", "data": 1},
        {"type": "publish", "channel": "{ch}", "data": 2, "event": "tick"},
        {"type": "publish", "id": "{id2}", "channel": "{ch}", "data": 3},
    ],
    "subscribe since 0 replays in order, then live publications follow": [
        {"type": "publish", "id": "{id1}", "channel": "{ch}", "data": "a"},
        {"type": "publish", "id": "{id2}", "channel": "{ch}", "data": "b", "event": "news"},
        {"type": "subscribe", "channel": "{ch}", "since": "0"},
        {"type": "publish", "channel": "{ch}", "data": "live"},
        {"type": "unsubscribe", "channel": "{ch}"},
        {"type": "publish", "channel": "{ch}", "data": "not for us"},
    ],
    "subscribe since an offset replays what follows it; live-only replays nothing": [
        {"type": "publish", "id": "{id1}", "channel": "{ch}", "data": 1},
        {"type": "publish", "id": "{id2}", "channel": "{ch}", "data": 2},
        {"type": "subscribe", "channel": "{ch}", "since": "{offset:id1}"},
        {"type": "subscribe", "channel": "{ch2}"},
        {"type": "unsubscribe", "channel": "{ch2}"},
        {"type": "unsubscribe", "channel": "{ch2}"},
    ],
    "refresh without authentication answers no expiry; without a token it is a bad frame": [
        {"type": "refresh", "id": "{id1}", "token": "anything"},
        {"type": "refresh", "token": "anything"},
        {"type": "refresh", "id": "{id2}"},
        {"type": "refresh", "id": 7, "token": "x"},
    ],
    "history pages forward and backward, by limit and since": [
        {"type": "publish", "id": "{id1}", "channel": "{ch}", "data": "a"},
        {"type": "publish", "id": "{id2}", "channel": "{ch}", "data": "b", "event": "news"},
        {"type": "publish", "channel": "{ch}", "data": "c"},
        {"type": "history", "id": "{id3}", "channel": "{ch}"},
        {"type": "history", "id": "{id3}", "channel": "{ch}", "limit": 2},
        {"type": "history", "id": "{id3}", "channel": "{ch}", "since": "{offset:id1}"},
        {"type": "history", "id": "{id3}", "channel": "{ch}", "since": "{offset:id2}", "limit": 1},
        {"type": "history", "id": "{id3}", "channel": "{ch}", "reverse": True, "limit": 2},
        {"type": "history", "id": "{id3}", "channel": "{ch}", "reverse": True, "since": "{offset:id2}"},
        {"type": "history", "id": "{id3}", "channel": "{ch}", "since": "0", "limit": 100000},
        {"type": "history", "id": "{id3}", "channel": "{ch2}"},
        {"type": "history", "id": "{id3}", "channel": "{ch2}", "since": "5-5"},
        {"type": "history", "id": "{id3}", "channel": "{ch2}", "reverse": True, "since": "5-5"},
    ],
    "bad history frames get error frames naming their id": [
        {"type": "history", "channel": "{ch}"},
        {"type": "history", "id": "{id1}", "channel": "no spaces"},
        {"type": "history", "id": "{id1}", "channel": "{ch}", "since": "yesterday"},
        {"type": "history", "id": "{id1}", "channel": "{ch}", "limit": 0},
        {"type": "history", "id": "{id1}", "channel": "{ch}", "limit": "ten"},
        {"type": "history", "id": "{id1}", "channel": "{ch}", "limit": True},
        {"type": "history", "id": "{id1}", "channel": "{ch}", "reverse": "yes"},
    ],
    "presence: a subscription follows it; joins, updates, reads and leaves": [
        {"type": "subscribe", "channel": "{ch}", "presence": True},
        {"type": "presence_join", "id": "{id1}", "channel": "{ch}", "info": {"name": "a"}, "key": "k1"},
        {"type": "presence_join", "id": "{id2}", "channel": "{ch}", "info": {"name": "a"}, "key": "k1"},
        {"type": "presence_join", "channel": "{ch}", "info": {"name": "a", "away": True}, "key": "k1"},
        {"type": "presence", "id": "{id3}", "channel": "{ch}"},
        {"type": "presence_join", "id": "{id1}", "channel": "{ch}", "key": "k2"},
        {"type": "presence", "id": "{id3}", "channel": "{ch}"},
        {"type": "presence_leave", "id": "{id2}", "channel": "{ch}", "key": "k2"},
        {"type": "presence_leave", "id": "{id2}", "channel": "{ch}", "key": "k2"},
        {"type": "presence", "id": "{id3}", "channel": "{ch}"},
        {"type": "presence_join", "id": "{id1}", "channel": "{ch2}", "info": [1, 2]},
        {"type": "subscribe", "channel": "{ch2}", "presence": True},
        {"type": "unsubscribe", "channel": "{ch2}"},
        {"type": "presence_leave", "channel": "{ch2}"},
    ],
    "bad presence frames get error frames naming their id": [
        {"type": "presence", "channel": "{ch}"},
        {"type": "presence", "id": "{id1}", "channel": "no spaces"},
        {"type": "presence_join", "id": "{id1}", "channel": "no spaces"},
        {"type": "presence_join", "id": "{id1}", "channel": "{ch}", "key": 5},
        {"type": "presence_join", "id": "{id1}", "channel": "{ch}", "key": "k" * 65},
        {"type": "presence_join", "id": "{id1}", "channel": "{ch}", "info": "x" * 600},
        {"type": "presence_join", "id": "{id1}", "channel": "_server", "info": 1},
        {"type": "presence_join", "id": 3, "channel": "{ch}"},
        {"type": "presence_leave", "id": "{id1}", "channel": "{ch}", "key": []},
        {"type": "subscribe", "channel": "{ch}", "presence": "yes"},
    ],
    "bad frames get error frames with the same codes": [
        "{not json",
        "[1, 2]",
        b"\x00\x01",
        {"type": "bogus", "id": "{id1}"},
        {"type": "subscribe", "channel": "no spaces allowed"},
        {"type": "subscribe"},
        {"type": "subscribe", "channel": "{ch}", "since": "yesterday"},
        {"type": "message", "id": 42, "data": 1},
        {"type": "publish", "id": "{id2}", "channel": "{ch}", "data": 1, "event": "bad event!"},
        {"type": "publish", "channel": "", "data": 1},
        {"type": "unsubscribe"},
    ],
}
#: Scripts only the binary binding can send (their frames hold bytes).
BINARY_SCRIPTS: dict[str, Script] = {
    "bytes and arrays travel as they are: publish, replay, history, messages": [
        {"type": "publish", "id": "{id1}", "channel": "{ch}", "data": b"\x00\xffbytes"},
        {
            "type": "publish",
            "id": "{id2}",
            "channel": "{ch}",
            "data": {"a": msgpack.ExtType(1, msgpack.packb(["<f4", [2]]) + b"\x00\x00\x80?\x00\x00\x00@")},
        },
        {"type": "subscribe", "channel": "{ch}", "since": "0"},
        {"type": "history", "id": "{id3}", "channel": "{ch}"},
        {"type": "message", "id": "{id3}", "data": [b"x", {"k": b"y"}]},
        {"type": "message", "data": b"echo"},
        {"type": "publish", "channel": "{ch}", "data": {"$pyrt": "bytes", "base64": "eHk="}},
        {"type": "publish", "id": "{id1}", "channel": "{ch}", "data": msgpack.ExtType(9, b"")},
        "{not json",
        b"\x00\x01",
    ],
}


# ------------------------------------------------------------------------------- running a script


class Names:
    """Unique channel names and ids for one run (the real server is shared), and the way back."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.values = {
            "{ch}": f"conf-{tag}",
            "{ch2}": f"conf2-{tag}",
            "{id1}": f"id1-{tag}",
            "{id2}": f"id2-{tag}",
            "{id3}": f"id3-{tag}",
        }
        self.offsets: dict[str, str] = {}  # "{offset:id1}" -> the offset the ack of id1 carried

    def fill(self, frame: Frame) -> Frame:
        if isinstance(frame, bytes):
            return frame
        if isinstance(frame, dict):
            return {
                key: self.fill(value) if isinstance(value, str) else value for key, value in frame.items()
            }  # type: ignore[misc]
        text = frame if isinstance(frame, str) else json.dumps(frame)
        for placeholder, value in {**self.values, **self.offsets}.items():
            text = text.replace(placeholder, value)
        if isinstance(frame, str):
            return text
        filled: dict[str, Any] = json.loads(text)
        return filled

    def learn(self, answer: dict[str, Any]) -> None:
        data = answer.get("data")
        if answer.get("type") == "ack" and isinstance(data, dict) and "offset" in data:
            for placeholder, value in self.values.items():
                if answer.get("id") == value:
                    self.offsets["{offset:" + placeholder.strip("{}") + "}"] = data["offset"]


def normalise(groups: list[list[dict[str, Any]]], names: Names) -> list[list[dict[str, Any]]]:
    back = {value: placeholder for placeholder, value in names.values.items()}
    numbering: dict[str, str] = {}
    counter = itertools.count(1)

    def offset(value: Any) -> Any:
        if not isinstance(value, str) or value == "0":
            return value
        if value not in numbering:
            numbering[value] = f"o{next(counter)}"
        return numbering[value]

    clients: dict[str, str] = {}

    def client(value: str) -> str:
        return clients.setdefault(value, f"m{len(clients) + 1}")

    def members(holder: dict[str, Any]) -> dict[str, Any]:
        """Presence members and versions, numbered by appearance like offsets."""
        out = dict(holder)
        for field in ("members", "joins", "leaves"):
            if isinstance(out.get(field), list):
                out[field] = [{**m, "client": client(m["client"])} for m in out[field]]
        if "version" in out:
            out["version"] = offset(out["version"])
        return out

    out = []
    for group in groups:
        normal = []
        for answer in group:
            frame = {key: back.get(v, v) if isinstance(v, str) else v for key, v in answer.items()}
            kind = frame.get("type")
            if kind == "welcome":
                frame = {"type": "welcome", "fields": sorted(answer), "limits": answer.get("limits")}
            elif kind == "error":
                frame.pop("message", None)
            elif kind in ("publication", "subscribed"):
                frame["offset"] = offset(frame.get("offset"))
                if isinstance(frame.get("presence"), dict):
                    frame["presence"] = members(frame["presence"])
            elif kind == "presence_diff":
                frame = members(frame)
            elif kind == "ack" and isinstance(frame.get("data"), dict) and "client" in frame["data"]:
                frame["data"] = {"client": client(frame["data"]["client"])}
            elif kind == "ack" and isinstance(frame.get("data"), dict) and "members" in frame["data"]:
                frame["data"] = members(frame["data"])
            elif kind == "ack" and isinstance(frame.get("data"), dict) and "offset" in frame["data"]:
                data = {**frame["data"], "offset": offset(frame["data"]["offset"])}
                pages = data.get("publications")
                if isinstance(pages, list):  # a history page
                    data["publications"] = [{**p, "offset": offset(p["offset"])} for p in pages]
                frame["data"] = data
            normal.append(frame)
        out.append(normal)
    return out


def _wire(frame: Frame, binding: str) -> str | bytes:
    """A filled script frame as the binding sends it (text and bytes frames as they are)."""
    if isinstance(frame, str | bytes):
        return frame
    return msgpack.packb(frame) if binding == "msgpack" else json.dumps(frame)


def _answers(message: str | bytes) -> list[dict[str, Any]]:
    if isinstance(message, str):
        return [json.loads(line) for line in message.split("\n") if line]
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(message)
    return list(unpacker)


def run_on_fake(script: Script, names: Names, binding: str = "json") -> list[list[dict[str, Any]]]:
    server = FakePyrtServer(limits=Settings().advertised_limits(), binary=True)  # serve.py's defaults
    conn: ServerConnection = server.accept(["pyrt.v1.msgpack"] if binding == "msgpack" else ["pyrt.v1"])
    groups = [_drain(conn)]
    for frame in script:
        conn.handle(_wire(names.fill(frame), binding))
        group = _drain(conn)
        for answer in group:
            names.learn(answer)
        groups.append(group)
    return groups


def _drain(conn: ServerConnection) -> list[dict[str, Any]]:
    answers = [answer for message in conn.outgoing for answer in _answers(message)]
    conn.outgoing.clear()
    return answers


async def run_on_server_binary(
    server: ServerProcess, script: Script, names: Names
) -> list[list[dict[str, Any]]]:
    async with websockets.connect(f"{server.ws_url}/ws", subprotocols=["pyrt.v1.msgpack"]) as ws:
        assert ws.subprotocol == "pyrt.v1.msgpack"
        pending: list[dict[str, Any]] = []

        async def recv() -> dict[str, Any]:
            while not pending:
                pending.extend(_answers(await asyncio.wait_for(ws.recv(), 10)))
            return pending.pop(0)

        groups: list[list[dict[str, Any]]] = [[await recv()]]
        for n, frame in enumerate(script):
            await ws.send(_wire(names.fill(frame), "msgpack"))
            sentinel = 10_000_000 + n
            await ws.send(msgpack.packb({"type": "ping", "t": sentinel}))
            group = []
            while True:
                answer = await recv()
                if answer == {"type": "pong", "t": sentinel}:
                    break
                names.learn(answer)
                group.append(answer)
            groups.append(group)
    return groups


async def run_on_server(server: ServerProcess, script: Script, names: Names) -> list[list[dict[str, Any]]]:
    client = await Client.connect(server.ws_url)
    groups: list[list[dict[str, Any]]] = [[client.welcome]]
    try:
        for n, frame in enumerate(script):
            await client.send(names.fill(frame))
            sentinel = 10_000_000 + n
            await client.send({"type": "ping", "t": sentinel})
            group = []
            while True:
                answer = await client.recv()
                if answer == {"type": "pong", "t": sentinel}:
                    break
                names.learn(answer)
                group.append(answer)
            groups.append(group)
    finally:
        await client.close()
    return groups


# ------------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def plain_server() -> Iterator[ServerProcess]:
    """serve.py with its default settings (no demo)."""
    proc = ServerProcess()
    yield proc
    proc.stop()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_the_fake_server_answers_as_serve_py_does(plain_server: ServerProcess, name: str) -> None:
    script = SCRIPTS[name]
    real_names, fake_names = Names(), Names()
    real = normalise(asyncio.run(run_on_server(plain_server, script, real_names)), real_names)
    fake = normalise(run_on_fake(script, fake_names), fake_names)
    assert fake == real


@pytest.mark.parametrize("name", [*SCRIPTS, *BINARY_SCRIPTS])
def test_the_fake_server_answers_as_serve_py_does_on_the_binary_binding(
    plain_server: ServerProcess, name: str
) -> None:
    script = SCRIPTS.get(name) or BINARY_SCRIPTS[name]
    real_names, fake_names = Names(), Names()
    real = normalise(asyncio.run(run_on_server_binary(plain_server, script, real_names)), real_names)
    fake = normalise(run_on_fake(script, fake_names, "msgpack"), fake_names)
    assert fake == real
    if name in BINARY_SCRIPTS:  # what the script checks: bytes came back as bytes
        flat = [answer for group in real for answer in group]
        assert {"type": "message", "data": b"echo"} in flat
        assert any(a.get("type") == "publication" and a.get("data") == b"\x00\xffbytes" for a in flat)


def test_the_comparison_notices_a_difference() -> None:
    names = Names()
    ack_id = names.values["{id1}"]
    ok = normalise([[{"type": "ack", "id": ack_id, "ok": True, "data": {"offset": "5-1"}}]], names)
    other = normalise([[{"type": "ack", "id": ack_id, "ok": False, "error": "x"}]], names)
    assert ok == [[{"type": "ack", "id": "{id1}", "ok": True, "data": {"offset": "o1"}}]]
    assert ok != other
