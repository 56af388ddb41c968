"""``persist=`` on CPython: one JSON file per key, atomic writes, paths allowed as keys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pyrt import Backoff, WebSocketClient
from pyrt.cpython.storage import FileStorage, default_directory
from pyrt.testing import FakePyrtServer, FakeTransport

pytestmark = pytest.mark.unit


def test_a_plain_key_is_a_json_file_in_the_directory(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "pyrt")
    assert storage.getItem("chat") is None
    storage.setItem("chat", '{"v":1}')
    assert (tmp_path / "pyrt" / "chat.json").read_text() == '{"v":1}'
    assert storage.getItem("chat") == '{"v":1}'
    storage.removeItem("chat")
    storage.removeItem("chat")  # twice is fine
    assert storage.getItem("chat") is None


def test_a_key_that_looks_like_a_path_is_the_file(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "unused")
    target = tmp_path / "state" / "ws.json"
    storage.setItem(str(target), "x")
    assert target.read_text() == "x"
    assert storage.path("~/a.json") == Path("~/a.json").expanduser()
    assert storage.path("plain.json") == Path("plain.json")


def test_odd_keys_cannot_escape_the_directory(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    assert storage.path("a:b c") == tmp_path / "a%3Ab%20c.json"
    assert storage.path("..") == tmp_path / "...json"
    with pytest.raises(ValueError, match="must not be empty"):
        storage.path("")


def test_writes_replace_the_file_whole_and_leave_no_temporary_files(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    for n in range(5):
        storage.setItem("k", json.dumps({"n": n}))
    assert json.loads(storage.getItem("k") or "") == {"n": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def test_the_default_directory_follows_xdg_cache_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_directory() == tmp_path / "pyrt"
    assert FileStorage().path("chat") == tmp_path / "pyrt" / "chat.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_directory() == Path("~/.cache/pyrt").expanduser()


def test_a_client_persists_unacked_messages_to_the_file_and_a_new_one_resends_them(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    server = FakePyrtServer()

    async def first() -> None:
        server.accepting = False  # the network is down: the message stays unacknowledged
        transport = FakeTransport(server, asyncio.get_running_loop().call_soon)
        client = WebSocketClient(
            "ws://test/ws",
            heartbeat=None,
            persist="chat",
            storage=storage,
            transport=transport,
            backoff=Backoff(initial=0.01, maximum=0.02),
        )
        client.connect()
        client.send_with_ack({"n": 1})
        while not (tmp_path / "chat.json").exists():
            await asyncio.sleep(0.01)

    async def second() -> None:
        server.accepting = True
        transport = FakeTransport(server, asyncio.get_running_loop().call_soon)
        client = WebSocketClient(
            "ws://test/ws", heartbeat=None, persist="chat", storage=storage, transport=transport
        )
        await client.connect().wait_open(5)
        while client.stats.acked < 1:
            await asyncio.sleep(0.01)
        client.close()

    asyncio.run(asyncio.wait_for(first(), 10))
    assert len(json.loads((tmp_path / "chat.json").read_text())["frames"]) == 1
    asyncio.run(asyncio.wait_for(second(), 10))
    assert server.handled == [{"n": 1}]
