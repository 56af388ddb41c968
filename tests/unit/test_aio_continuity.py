"""What outlives one WebSocketClient (pyrt.aio.continuity): its saved state (``persist=``) loaded
before it connects, written at the next turn, awaited by ``persisted()``, reported when no storage
can keep it; on CPython over the in-memory FakeTransport and FakePyrtServer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.states import State
from pyrt.errors import InvalidStateError, StorageUnavailable
from pyrt.persist.records import MemoryRecordStore, MemoryStorage, RestoredMessage, SavedFrame
from pyrt.testing import FakePyrtServer, FakeServices, FakeTransport
from tests.unit.loop_support import run, until
from tests.unit.test_aio_websocket import make


def test_persisted_messages_are_delivered_by_the_next_page() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        storage = MemoryStorage()
        server.accepting = False
        first, _ = make(server, persist="chat", storage=storage)
        first.connect()
        first.send("written while offline")
        pending = first.send_with_ack("acked while offline")
        first.page_hidden()  # the page goes away before the network comes back
        assert not pending.done()
        assert json.loads(storage.getItem("chat") or "{}")["frames"]

        server.accepting = True
        second, _ = make(server, persist="chat", storage=storage)
        await second.connect().wait_open()
        await until(lambda: len(server.handled) == 2)
        assert server.handled == ["written while offline", "acked while offline"]

    run(scenario)


class NoStorage(FakeServices):
    """A runtime with no durable storage at all (a sandboxed frame, an odd worker)."""

    def record_store(self) -> None:
        return None


def test_without_durable_storage_the_client_says_so_once_and_keeps_working() -> None:
    async def scenario() -> None:
        transport = FakeTransport(FakePyrtServer(), asyncio.get_running_loop().call_soon)
        client = WebSocketClient(
            "ws://test/ws", heartbeat=None, persist="chat", transport=transport, services=NoStorage()
        )
        errors: list[Exception] = []
        client.on_error(errors.append)
        assert client.storage_kind is None
        assert not client.durable
        await client.connect().wait_open()
        assert [type(e) for e in errors] == [StorageUnavailable]
        assert "will not survive a reload" in str(errors[0])
        assert (client.durable, client.storage_kind) == (False, "memory")
        assert await client.send_with_ack("still works") == "still works"
        with pytest.raises(StorageUnavailable):
            await client.persisted()
        assert len(errors) == 1

    run(scenario)


def test_a_durable_store_raises_no_warning_and_persisted_returns() -> None:
    async def scenario() -> None:
        client, _ = make(persist="chat")
        errors: list[Exception] = []
        client.on_error(errors.append)
        with pytest.raises(InvalidStateError, match="not connected yet"):
            await client.persisted()
        client.connect()
        client.send_with_ack("x")
        await client.persisted()
        assert client.durable
        assert errors == []
        plain, _ = make()
        with pytest.raises(InvalidStateError, match="without persist="):
            await plain.persisted()

    run(scenario)


def test_restored_messages_report_their_fate_to_on_restored() -> None:
    async def scenario() -> None:
        server = FakePyrtServer(app=lambda data: {"stored": data})
        store = MemoryRecordStore(durable=True)
        server.accepting = False
        first, _ = make(server, persist="chat", storage=store)
        first.connect()
        first.send_with_ack({"n": 1})
        first.publish("news", "headline")
        await first.persisted()
        assert len(store.records["chat"]) == 2

        server.accepting = True
        second, _ = make(server, persist="chat", storage=store)
        outcomes: list[RestoredMessage] = []
        second.on_restored(outcomes.append)
        second.connect()
        await until(lambda: len(outcomes) == 2)
        by_kind = {m.kind: m for m in outcomes}
        assert by_kind["message"].ok
        assert by_kind["message"].reply == {"stored": {"n": 1}}
        assert by_kind["message"].data == {"n": 1}
        assert by_kind["publish"].reply == "1-1"
        assert by_kind["publish"].channel == "news"
        assert second.stats.restored == 2
        await until(lambda: not store.records["chat"])

    run(scenario)


class LateStore(MemoryRecordStore):
    """A store that loads a moment later (IndexedDB); ``loads`` counts the loads it answered."""

    loads = 0

    def load(self, key: str, done: Any, failed: Any) -> None:
        def answer() -> None:
            super(LateStore, self).load(key, done, failed)
            self.loads += 1

        asyncio.get_running_loop().call_later(0.02, answer)


def test_a_client_whose_state_loads_later_connects_then_and_sends_the_saved_messages_first() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        store = LateStore(durable=True)
        store.records["chat"] = {
            5: SavedFrame('{"type":"message","id":"old-1","data":"saved"}', "old-1", "message", 5)
        }
        client, _ = make(server, persist="chat", storage=store)
        client.connect()
        assert client.state is State.IDLE
        with pytest.raises(InvalidStateError, match="loading the saved state"):
            client.connect()
        client.send_with_ack("sent while loading")
        await client.wait_open()
        await until(lambda: len(server.handled) == 2)
        assert server.handled == ["saved", "sent while loading"]
        await until(lambda: not store.records["chat"])

        late = LateStore(durable=True)
        closing, _ = make(server, persist="chat", storage=late)
        closing.connect()
        closing.close()
        await until(lambda: late.loads == 1)  # the saved state came after the close ...
        assert closing.state is State.CLOSED  # ... and did not connect it

    run(scenario)
