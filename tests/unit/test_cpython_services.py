"""CPython's runtime services: no page, persist= in files, the loop's own timers, no sharing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyrt import WebSocketClient
from pyrt.cpython.services import CPythonServices, LoopTimers
from pyrt.cpython.storage import FileStore, default_directory
from pyrt.cpython.ws_transport import CPythonTransport
from pyrt.errors import ShareUnavailable
from pyrt.testing import FakePyrtServer, FakeTransport

pytestmark = pytest.mark.unit


def test_there_is_no_page_to_watch_and_no_group_to_share_with() -> None:
    services = CPythonServices()
    watching = services.watch_page(None)  # type: ignore[arg-type]  # nothing to report, nothing called
    watching.stop()
    watching.stop()
    with pytest.raises(ShareUnavailable, match="in a browser only"):
        services.share_channel("app")


def test_persist_goes_to_files_in_the_cache_directory_or_the_one_given(tmp_path: Path) -> None:
    default = CPythonServices().record_store()
    assert isinstance(default, FileStore)
    assert default.directory == default_directory()
    chosen = CPythonServices(storage_dir=tmp_path).record_store()
    assert chosen.directory == tmp_path
    assert CPythonServices(tmp_path).record_store() is not chosen  # a store for every client


def test_a_client_times_itself_with_the_loops_call_later() -> None:
    async def scenario() -> None:
        timers = CPythonServices().timers(asyncio.get_running_loop())
        assert type(timers) is LoopTimers
        fired: list[str] = []
        timers.call_later(0.01, lambda: fired.append("kept"))
        timers.call_later(0.0, lambda: fired.append("cancelled")).cancel()
        while not fired:
            await asyncio.sleep(0.005)
        timers.dispose()
        assert fired == ["kept"]

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_a_transport_made_with_storage_dir_still_chooses_where_persist_goes(tmp_path: Path) -> None:
    """``CPythonTransport(storage_dir=...)``, as code written before the services has it, carries
    services with that directory, which a client given no ``services=`` uses."""
    transport = CPythonTransport(storage_dir=tmp_path)
    assert isinstance(transport.services, CPythonServices)
    assert transport.services.storage_dir == tmp_path

    async def scenario() -> None:
        fake = FakeTransport(FakePyrtServer())
        services = CPythonServices(tmp_path)
        client = WebSocketClient("ws://h/ws", transport=fake, services=services, persist="chat")
        await client.connect().wait_open(2)
        assert (client.storage_kind, client.durable) == ("file", True)
        client.send("kept")
        await client.persisted()
        client.close()

    asyncio.run(asyncio.wait_for(scenario(), 5))
