"""``client.state_then_stream`` over the in-memory fakes: a snapshot, then every publication once;
a gap loads again; load and apply failures are reported."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.testing import FakePyrtServer, FakeTransport
from pyrt.wire.frames import Publication
from tests.unit.loop_support import run, until


def make(server: FakePyrtServer) -> tuple[WebSocketClient, FakeTransport]:
    transport = FakeTransport(server, asyncio.get_running_loop().call_soon)
    backoff = Backoff(initial=0.01)
    client = WebSocketClient("ws://test/ws", transport=transport, heartbeat=None, backoff=backoff)
    return client, transport


class App:
    """The application's side: a total of every publication, and the offset it reflects."""

    def __init__(self, server: FakePyrtServer) -> None:
        self.server = server
        self.total = 0
        self.offset = "0"
        self.loads = 0

    def add(self, n: int) -> None:
        self.offset = self.server.publish("sums", n)
        self.total += n

    async def load(self) -> tuple[int, str]:
        self.loads += 1
        await asyncio.sleep(0)
        return self.total, self.offset


def add(state: int, publication: Publication) -> int:
    return state + int(publication.data)


def test_the_snapshot_then_every_later_publication_once() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        app = App(server)
        for n in range(1, 4):
            app.add(n)
        client, transport = make(server)
        client.connect()
        changes: list[int] = []
        synced = await client.state_then_stream("sums", app.load, add, on_change=changes.append)
        assert synced.state == 6
        for n in range(4, 8):
            app.add(n)
        await until(lambda: synced.state == app.total)
        transport.drop()  # a reconnect resumes after the last publication applied
        app.add(100)
        await until(lambda: synced.state == app.total)
        assert changes[0] == 6
        assert changes[-1] == app.total
        assert (synced.applied, synced.reloads) == (5, 0)

    run(scenario)


def test_a_snapshot_older_than_retention_is_loaded_again() -> None:
    async def scenario() -> None:
        server = FakePyrtServer(retention=2)
        app = App(server)
        client, _ = make(server)
        client.connect()
        app.add(1)
        stale = (app.total, app.offset)  # a snapshot read long ago (a cache, a slow page)
        for n in range(2, 7):
            app.add(n)  # five more: only the last two are retained

        async def load() -> tuple[int, str]:
            if app.loads == 0:
                app.loads += 1
                return stale
            return await app.load()

        synced = await client.state_then_stream("sums", load, add)
        await until(lambda: synced.state == app.total and not synced.loading)
        assert synced.reloads == 1
        assert app.loads == 2

    run(scenario)


def test_failures_are_reported_and_a_failed_apply_loads_again() -> None:
    async def scenario() -> None:
        server = FakePyrtServer()
        app = App(server)
        client, _ = make(server)
        client.connect()
        errors: list[Exception] = []

        def picky(state: int, publication: Publication) -> int:
            if publication.data == 13:
                raise ValueError("unlucky")
            return add(state, publication)

        synced = await client.state_then_stream("sums", app.load, picky, on_error=errors.append)
        app.add(13)
        await until(lambda: errors)
        assert "unlucky" in str(errors[0])
        await until(lambda: not synced.loading)
        assert synced.state == 13  # from the new snapshot, which holds it
        app.add(1)
        await until(lambda: synced.state == 14)
        synced.close()
        app.add(1)
        await client.send_with_ack("a round trip: anything sent before its ack has arrived")
        assert synced.state == 14

    run(scenario)


def test_a_first_load_that_fails_or_returns_nonsense_is_raised() -> None:
    async def scenario() -> None:
        client, _ = make(FakePyrtServer())
        client.connect()

        def broken() -> Any:
            raise ConnectionError("no state service")

        with pytest.raises(ConnectionError):
            await client.state_then_stream("sums", broken, add)
        with pytest.raises(TypeError, match=r"\(state, offset\)"):
            await client.state_then_stream("sums", lambda: {"total": 1}, add)
        with pytest.raises(ValueError, match="offset"):
            await client.state_then_stream("sums", lambda: (0, "yesterday"), add)

    run(scenario)
