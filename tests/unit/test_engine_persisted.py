"""Persistence (pyrt/engine/persisted.py): what a page saves, and what the next one restores."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyrt.engine.pacing import WELCOME_GRACE
from pyrt.errors import (
    AckTimeout,
    InvalidStateError,
)
from pyrt.persist.records import MemoryRecordStore, SavedFrame, Snapshot
from pyrt.testing import AckWaiter, EngineHarness, FakePyrtServer
from tests.unit.engine_support import (
    frames_of,
    online,
)

# ------------------------------------------------------------------------------ persistence


def page_that_left(server: FakePyrtServer, *data: Any, **kwargs: Any) -> EngineHarness:
    """A first page whose acked messages went into a blackhole before it went away (pagehide)."""
    first = online(server, persist=True, **kwargs)
    first.blackhole()
    for item in data:
        first.send_with_ack(item)
    first.engine.page_hidden(first.now)
    first.pump()
    return first


def reloaded(first: EngineHarness, server: FakePyrtServer, **kwargs: Any) -> EngineHarness:
    """A new page's harness on the same store (restore it, then connect)."""
    kwargs.setdefault("heartbeat", None)
    return EngineHarness(server=server, persist=True, store=first.store, **kwargs)


def test_unacked_messages_and_offsets_survive_a_page_reload() -> None:
    server = FakePyrtServer()
    first = online(server, persist=True)
    got = first.subscribe("c")
    server.publish("c", "seen")
    first.pump()
    first.blackhole()
    lost = first.send_with_ack("sent into the void")
    server.accepting = False
    first.drop()
    first.send("queued while offline")
    first.engine.page_hidden(first.now)
    first.pump()
    assert not lost.done
    assert [p.data for p in got] == ["seen"]

    server.publish("c", "published during the reload")
    server.accepting = True
    second = reloaded(first, server)
    second.restore()
    again = second.subscribe("c")
    second.connect()
    assert server.handled == ["sent into the void", "queued while offline"]
    assert [p.data for p in again] == ["published during the reload"]
    assert second.engine.stats.restored == 2


def test_saved_offsets_resume_subscriptions_made_before_restore() -> None:
    # WebSocketClient restores in connect(), after the page's subscribe() calls.
    server = FakePyrtServer()
    first = online(server, persist=True)
    first.subscribe("c")
    server.publish("c", "seen")
    first.pump()
    first.engine.page_hidden(first.now)
    first.pump()
    server.publish("c", "published during the reload")
    second = reloaded(first, server)
    again = second.subscribe("c")
    pinned = second.subscribe("d", since="0")
    second.restore()
    second.connect()
    assert [p.data for p in again] == ["published during the reload"]
    assert frames_of(second, "subscribe")[-1]["since"] == "0"  # an explicit since is kept
    assert pinned == []


def test_a_restored_message_the_server_already_handled_is_not_handled_again() -> None:
    server = FakePyrtServer()
    first = online(server, persist=True)
    first.blackhole()
    waiter = first.send_with_ack("handled, but the ack was lost")
    server.accept().handle(first.sent[-1])  # the server got it; its ack never came back
    first.engine.page_hidden(first.now)
    first.pump()
    assert not waiter.done

    second = reloaded(first, server)
    second.restore()
    second.connect()
    assert server.handled == ["handled, but the ack was lost"]
    assert len(frames_of(second, "message")) == 1
    assert second.errors == []
    assert second.engine.pending_acks == 0


def test_each_restored_message_reports_its_ack_or_its_failure() -> None:
    server = FakePyrtServer()
    first = online(server, persist=True)
    first.blackhole()
    first.send_with_ack({"n": 1})
    first.publish("news", {"headline": "x"})
    first.engine.page_hidden(first.now)
    first.pump()
    ids = [f["id"] for f in frames_of(first, "message") + frames_of(first, "publish")]

    second = reloaded(first, server, ack_retries=0, ack_timeout=1.0)
    second.restore()
    second.connect()
    outcomes = {m.id: m for m in second.restored}
    assert sorted(outcomes) == sorted(ids)
    message = outcomes[ids[0]]
    assert (message.kind, message.ok, message.data, message.reply) == ("message", True, {"n": 1}, {"n": 1})
    publication = outcomes[ids[1]]
    assert (publication.kind, publication.channel, publication.data) == ("publish", "news", {"headline": "x"})
    assert publication.ok
    assert publication.reply == server.log["news"][-1][0]

    third = page_that_left(FakePyrtServer(), "never acked")
    fourth = EngineHarness(persist=True, store=third.store, heartbeat=None, ack_retries=0, ack_timeout=1.0)
    fourth.restore()
    fourth.connect()
    fourth.open()  # a server that never answers: not even its welcome
    fourth.advance(WELCOME_GRACE + 1.0)  # sent after the welcome grace, then timed out
    failed = fourth.restored[0]
    assert not failed.ok
    assert isinstance(failed.error, AckTimeout)
    assert fourth.errors == [failed.error]  # also reported to on_error


def test_saved_messages_go_before_those_sent_while_the_state_loaded() -> None:
    server = FakePyrtServer()
    first = page_that_left(server, "from the first page")
    second = reloaded(first, server, rng=lambda: 0.25)  # another page: other ids
    second.send_with_ack("sent before the saved state was loaded")
    assert second.saved == []  # held: the saved records' numbers are not known yet
    second.restore()
    second.connect()
    assert server.handled == ["from the first page", "sent before the saved state was loaded"]
    second.advance(0)
    assert second.stored().frames == ()


def test_a_write_holds_only_what_changed_however_long_the_queue() -> None:
    h = online(persist=True, queue_limit=20_000, queue_bytes=1 << 24)
    h.blackhole()
    server_down = h.server
    assert server_down is not None
    server_down.accepting = False
    h.drop()
    for n in range(10_000):
        h.send(n)  # the harness fires the zero-delay save timer after each, as a loop would
    assert len(h.stored().frames) == 10_000
    assert max(len(saved.puts) for saved in h.saved) == 1  # never the whole queue
    h.send("one more")
    h.advance(0)
    last = h.saved[-1]
    assert (len(last.puts), len(last.deletes), last.offsets) == (1, 0, None)
    assert len(h.stored().frames) == 10_001


def test_a_message_acknowledged_before_the_next_write_is_never_written() -> None:
    h = online(persist=True, persist_interval=0.25)
    for n in range(10):
        h.send_with_ack(n)  # the fake server acks at once
    h.advance(0.25)
    assert h.saved == []
    assert h.store.writes == 0


def test_an_acknowledged_message_leaves_storage_with_one_delete() -> None:
    h = online(persist=True)
    h.blackhole()
    h.send_with_ack("x")
    h.advance(0)
    assert len(h.stored().frames) == 1
    h.receive(json.dumps({"type": "ack", "id": frames_of(h, "message")[0]["id"], "ok": True}))
    h.advance(0)
    assert h.saved[-1].deletes == {1}
    assert not h.saved[-1].puts
    assert h.stored().frames == ()


def test_delivered_publications_move_the_saved_offset() -> None:
    server = FakePyrtServer()
    h = online(server, persist=True)
    h.subscribe("c")
    for n in range(3):
        server.publish("c", n)
    h.pump()
    h.advance(0)
    assert h.stored().offsets == {"c": server.log["c"][-1][0]}


def test_saves_are_batched_by_the_persist_interval() -> None:
    h = online(persist=True, persist_interval=0.25)
    h.blackhole()
    for n in range(10):
        h.send_with_ack(n)
    assert h.saved == []
    h.advance(0.25)
    assert len(h.saved) == 1
    assert len(h.stored().frames) == 10


def test_by_default_a_change_is_written_at_the_next_tick() -> None:
    h = online(persist=True)
    h.blackhole()
    h.engine.send_with_ack("x", h.now, AckWaiter(), None, 0)
    assert h.engine.next_deadline() == h.now  # a zero-delay timer, not a write in the call
    assert h.saved == []
    h.pump()  # the harness fires a timer that is due, as a real event loop would
    assert len(h.stored().frames) == 1


def test_save_now_writes_at_once_and_needs_persistence() -> None:
    h = online(persist=True, persist_interval=60)
    h.blackhole()
    h.send_with_ack("x")
    assert h.engine.save_now(h.now)
    h.pump()
    assert len(h.stored().frames) == 1
    assert not online().engine.save_now(0.0)


def test_closing_the_client_removes_what_it_saved() -> None:
    h = online(persist=True)
    h.blackhole()
    h.send_with_ack("x")
    h.advance(0)
    h.close()
    h.advance(5)
    assert h.stored().frames == ()


def test_records_from_an_older_format_are_written_again_with_numbers() -> None:
    old = page_that_left(FakePyrtServer(), "old").stored()
    unnumbered = Snapshot(tuple(SavedFrame(s.frame, s.ack_id, s.kind) for s in old.frames), old.offsets)
    store = MemoryRecordStore(durable=True)
    second = EngineHarness(server=FakePyrtServer(), persist=True, store=store, heartbeat=None)
    second.engine.restore(unnumbered)
    second.engine.save_now(second.now)
    second.pump()
    assert [s.seq for s in store.records["test"].values()] == [1]


def test_restore_after_connect_is_refused() -> None:
    h = online()
    with pytest.raises(InvalidStateError, match="before connect"):
        h.engine.restore(Snapshot())
