"""``persist=`` on CPython: a journal file per key (appends, compaction, torn lines), atomic
rewrites, paths allowed as keys, and the plain one-text-per-key ``FileStorage``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pyrt import Backoff, WebSocketClient
from pyrt.cpython.storage import FileStorage, FileStore, default_directory
from pyrt.persist.records import Changes, SavedFrame, Snapshot, dumps
from pyrt.testing import FakePyrtServer, FakeTransport, until

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
        await until(lambda: (tmp_path / "chat.json").exists())

    async def second() -> None:
        server.accepting = True
        transport = FakeTransport(server, asyncio.get_running_loop().call_soon)
        client = WebSocketClient(
            "ws://test/ws", heartbeat=None, persist="chat", storage=storage, transport=transport
        )
        await client.connect().wait_open(5)
        await until(lambda: client.stats.acked >= 1)
        client.close()

    asyncio.run(asyncio.wait_for(first(), 10))
    assert len(json.loads((tmp_path / "chat.json").read_text())["frames"]) == 1
    asyncio.run(asyncio.wait_for(second(), 10))
    assert server.handled == [{"n": 1}]


def load(store: FileStore, key: str) -> Snapshot:
    loaded: list[Snapshot] = []
    store.load(key, loaded.append, pytest.fail)
    return loaded[0]


def write(store: FileStore, key: str, changes: Changes) -> None:
    store.write(key, changes, lambda error: None if error is None else pytest.fail(str(error)))


def put(*seqs: int) -> Changes:
    return Changes(puts={seq: SavedFrame(f'{{"n":{seq}}}', f"a-{seq}", "message", seq) for seq in seqs})


def test_the_file_store_appends_one_line_per_batch_and_replays_them(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    assert load(store, "chat") == Snapshot()
    write(store, "chat", put(1, 2))
    write(store, "chat", Changes(deletes={1}, offsets={"news": "1-3"}))
    write(store, "chat", put(3))
    assert len((tmp_path / "chat.json").read_text().splitlines()) == 3
    again = load(FileStore(tmp_path), "chat")
    assert [s.seq for s in again.frames] == [2, 3]
    assert again.offsets == {"news": "1-3"}
    assert len((tmp_path / "chat.json").read_text().splitlines()) == 1  # rewritten whole once read


def test_a_write_appends_the_change_not_the_queue(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    write(store, "big", put(*range(1, 10_001)))
    path = tmp_path / "big.json"
    before = path.stat().st_size
    write(store, "big", put(10_001))
    assert path.stat().st_size - before < 100


def test_the_file_is_compacted_once_it_grew_past_its_live_size(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for seq in range(1, 3000):
        write(store, "k", put(seq))
        write(store, "k", Changes(deletes={seq}))
    assert (tmp_path / "k.json").stat().st_size < 80 * 1024  # not 6,000 lines of history
    assert load(FileStore(tmp_path), "k") == Snapshot()


def test_a_torn_last_line_from_a_killed_process_is_ignored(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    write(store, "k", put(1))
    with (tmp_path / "k.json").open("a") as file:
        file.write('{"p":[{"f":"half')
    assert [s.seq for s in load(FileStore(tmp_path), "k").frames] == [1]
    assert (tmp_path / "k.json").read_text().endswith("\n")


def test_a_file_an_older_pyrt_wrote_reads_as_numbered_records(tmp_path: Path) -> None:
    older = Snapshot((SavedFrame("a", "a-1"), SavedFrame("b")), {"c": "1-1"})
    (tmp_path / "old.json").write_text(dumps(older))
    store = FileStore(tmp_path)
    snapshot = load(store, "old")
    assert [(s.frame, s.seq) for s in snapshot.frames] == [("a", 1), ("b", 2)]
    write(store, "old", Changes(deletes={1}))
    assert [s.frame for s in load(FileStore(tmp_path), "old").frames] == ["b"]


def test_a_client_writes_and_a_new_one_restores_through_the_file_store(tmp_path: Path) -> None:
    server = FakePyrtServer()

    async def page(accepting: bool) -> WebSocketClient:
        server.accepting = accepting
        transport = FakeTransport(server, asyncio.get_running_loop().call_soon, storage=FileStore(tmp_path))
        client = WebSocketClient(
            "ws://test/ws", heartbeat=None, persist="chat", transport=transport, backoff=Backoff(initial=0.01)
        )
        client.connect()
        return client

    async def first() -> None:
        client = await page(accepting=False)
        client.send_with_ack({"n": 1})
        await client.persisted()
        assert client.storage_kind == "file"

    async def second() -> None:
        client = await page(accepting=True)
        await client.wait_open(5)
        await until(lambda: client.stats.acked >= 1)
        await client.persisted()
        client.close()

    asyncio.run(asyncio.wait_for(first(), 10))
    asyncio.run(asyncio.wait_for(second(), 10))
    assert server.handled == [{"n": 1}]
    assert load(FileStore(tmp_path), "chat") == Snapshot()
