"""FakeServices: a page the test moves by hand, a store clients share, the loop's timers, a share
bus; and the fake transports that carry them, so tests written before the services still work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyrt import FetchEventSource, WebSocketClient
from pyrt.engine.states import State
from pyrt.errors import ShareUnavailable
from pyrt.persist.records import MemoryRecordStore, MemoryStorage
from pyrt.testing import FakeFetchTransport, FakePyrtServer, FakeServices, FakeShareBus, FakeTransport
from tests.unit.loop_support import run, until


class Page:
    def __init__(self, name: str, heard: list[str]) -> None:
        self.name, self.heard = name, heard

    def __getattr__(self, event: str) -> Any:
        return lambda: self.heard.append(f"{self.name}:{event}")


def test_every_watcher_hears_the_page_until_it_stops() -> None:
    services = FakeServices()
    heard: list[str] = []
    first = services.watch_page(Page("a", heard))  # type: ignore[arg-type]
    services.watch_page(Page("b", heard))  # type: ignore[arg-type]
    services.page_hidden()
    first.stop()
    first.stop()
    services.page_online()
    services.page_visible()
    services.page_backgrounded()
    services.page_shown()
    later = ["b:page_online", "b:page_visible", "b:page_backgrounded", "b:page_shown"]
    assert heard == ["a:page_hidden", "b:page_hidden", *later]


def test_the_store_is_the_one_given_or_one_durable_store_of_the_services() -> None:
    services = FakeServices()
    store = services.record_store()
    assert isinstance(store, MemoryRecordStore)
    assert store.durable
    assert services.record_store() is store  # clients given the same services share it
    assert FakeServices().record_store() is not store
    web = FakeServices(storage=MemoryStorage()).record_store()
    assert web is not None
    assert web.kind == "storage"


def test_share_channels_come_from_the_bus_or_sharing_is_unavailable() -> None:
    bus = FakeShareBus()
    channel = FakeServices(bus=bus).share_channel("g")
    assert channel in bus.channels
    assert channel.name == "g"
    with pytest.raises(ShareUnavailable, match="no share bus"):
        FakeServices().share_channel("g")


def test_the_timers_are_the_loops() -> None:
    async def scenario() -> None:
        timers = FakeServices().timers(asyncio.get_running_loop())
        fired: list[int] = []
        timers.call_later(0.0, lambda: fired.append(1))
        timers.call_later(0.0, lambda: fired.append(2)).cancel()
        await until(lambda: fired)
        timers.dispose()
        assert fired == [1]

    run(scenario)


def test_a_fake_transport_carries_the_services_its_client_uses() -> None:
    """``FakeTransport(server, storage=...)`` and ``transport.page`` work as they always did."""

    async def scenario() -> None:
        saved = MemoryRecordStore(durable=True)
        transport = FakeTransport(FakePyrtServer(), storage=saved)
        assert transport.page is None  # nobody watches yet
        client = WebSocketClient("ws://h/ws", transport=transport, heartbeat=None, persist="chat")
        await client.connect().wait_open(2)
        assert transport.page is transport.services
        assert client._persistence is not None
        assert client._persistence.store is saved
        assert client.durable
        transport.page.page_hidden()  # pagehide: the client goes quiet until pageshow
        assert client.state is State.PAUSED
        transport.page.page_shown()
        await client.wait_open(2)
        client.close()
        assert transport.page is None
        fetch = FakeFetchTransport()
        source = FetchEventSource("/sse", transport=fetch).connect()
        assert fetch.page is fetch.services
        source.close()

    run(scenario)
