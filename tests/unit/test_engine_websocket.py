"""The whole engine (pyrt/engine/websocket.py): its counters, and properties under random faults."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.states import TRANSITIONS, State
from pyrt.errors import (
    ClientClosedError,
)
from pyrt.testing import EngineHarness, FakePyrtServer
from tests.unit.engine_support import (
    online,
)

# ------------------------------------------------------------------------------ misc


def test_stats_count_what_a_user_would_ask_about() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.send("a")
    h.send_with_ack("b")
    h.drop()
    h.send("c")
    h.advance(1.0)
    stats = h.engine.stats_snapshot().as_dict()
    assert stats["queued"] == 1
    assert stats["acked"] == 1
    assert stats["reconnects"] == 1
    assert stats["sent"] >= 3
    assert stats["received"] >= 4
    assert stats["queue_length"] == 0
    assert stats["pending_acks"] == 0


# ------------------------------------------------------------------------------ properties


OPS = st.one_of(
    st.tuples(st.just("send")),
    st.tuples(st.just("publish")),
    st.tuples(st.just("drop"), st.sampled_from([1000, 1001, 1006, 1011, 1012, 1013])),
    st.tuples(st.just("blackhole")),
    st.tuples(st.just("server"), st.booleans()),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=20.0)),
    st.tuples(st.just("visible")),
    st.tuples(st.just("online")),
    st.tuples(st.just("pagehide")),
)


CHAOS: dict[str, Any] = {
    "heartbeat": Heartbeat(interval=5.0, timeout=2.0),
    "ack_timeout": 3.0,
    "ack_retries": 10_000,
    "connect_timeout": 3.0,
    "backoff": Backoff(initial=0.1, maximum=5.0),
}


def play(h: EngineHarness, server: FakePyrtServer, ops: list[tuple[Any, ...]]) -> tuple[list[Any], int]:
    """Apply random faults and traffic; returns the ack waiters and the number of publications."""
    waiters: list[Any] = []
    published = 0
    for op in ops:
        kind = op[0]
        sock = h.socket
        if kind == "send":
            waiters.append(h.send_with_ack(len(waiters)))
        elif kind == "publish":
            server.publish("feed", published)
            published += 1
            h.pump()
        elif kind == "drop" and sock is not None and sock.state == "open":
            h.drop(op[1])
        elif kind == "blackhole" and sock is not None and sock.state == "open":
            h.blackhole()
        elif kind == "server":
            server.accepting = op[1]
        elif kind == "wait":
            h.advance(op[1])
        elif kind == "visible":
            h.engine.page_visible(h.now)
            h.pump()
        elif kind == "online":
            h.engine.network_online(h.now)
            h.pump()
        elif kind == "pagehide":
            h.engine.page_hidden(h.now)
            h.pump()
            h.advance(0.5)
            h.engine.page_shown(h.now)
            h.pump()
    server.accepting = True
    h.advance(120.0)
    return waiters, published


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(OPS, max_size=40), seed=st.integers(0, 2**32))
def test_with_acks_and_dedup_no_message_is_lost_or_duplicated(ops: list[tuple[Any, ...]], seed: int) -> None:
    server = FakePyrtServer()
    h = EngineHarness(server=server, rng=random.Random(seed).random, **CHAOS)
    h.connect()
    waiters, _ = play(h, server, ops)
    assert h.state is State.OPEN
    assert server.handled == list(range(len(waiters)))
    assert [(w.outcomes, w.error, w.value) for w in waiters] == [(1, None, n) for n in range(len(waiters))]


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(OPS, max_size=40), seed=st.integers(0, 2**32))
def test_a_subscription_delivers_every_publication_once_in_order(
    ops: list[tuple[Any, ...]], seed: int
) -> None:
    server = FakePyrtServer(overlap=2)  # replays also repeat two publications already delivered
    h = EngineHarness(server=server, rng=random.Random(seed).random, **CHAOS)
    got = h.subscribe("feed")
    h.connect()
    _, published = play(h, server, ops)
    assert [p.data for p in got] == list(range(published))
    assert all(p.recovered for p in got)


LIFE_OPS = st.one_of(
    OPS,
    st.tuples(st.just("close")),
    st.tuples(st.just("stop"), st.sampled_from([1008, 4401])),
    st.tuples(st.just("fire")),
)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(LIFE_OPS, max_size=50), seed=st.integers(0, 2**32))
def test_the_state_machine_never_takes_an_illegal_step(ops: list[tuple[Any, ...]], seed: int) -> None:
    server = FakePyrtServer()
    h = EngineHarness(server=server, rng=random.Random(seed).random, **CHAOS)
    h.connect()
    sockets_when_closed: int | None = None
    for op in ops:
        sock = h.socket
        if h.state in (State.CLOSING, State.CLOSED):
            if h.state is State.CLOSED:
                sockets_when_closed = sockets_when_closed or len(h.sockets)
            with pytest.raises(ClientClosedError):
                h.send("after close()")
            if op[0] == "wait":
                h.advance(op[1])
            continue
        if op[0] == "close":
            h.close()
        elif op[0] == "stop" and sock is not None and sock.state == "open":
            h.drop(op[1])
        elif op[0] == "fire":
            h.send("x")
        else:
            play_one(h, server, op)
    for old, new in zip(h.states, h.states[1:], strict=False):
        assert new in TRANSITIONS[old], f"{old} -> {new}"
    if sockets_when_closed is not None:
        assert len(h.sockets) == sockets_when_closed
        assert len(h.closes) == 1


def play_one(h: EngineHarness, server: FakePyrtServer, op: tuple[Any, ...]) -> None:
    kind = op[0]
    sock = h.socket
    if kind == "send":
        h.send_with_ack("x")
    elif kind == "publish":
        server.publish("feed", 1)
        h.pump()
    elif kind == "drop" and sock is not None and sock.state == "open":
        h.drop(op[1])
    elif kind == "blackhole" and sock is not None and sock.state == "open":
        h.blackhole()
    elif kind == "server":
        server.accepting = op[1]
    elif kind == "wait":
        h.advance(op[1])
    elif kind == "visible":
        h.engine.page_visible(h.now)
        h.pump()
    elif kind == "online":
        h.engine.network_online(h.now)
        h.pump()
    elif kind == "pagehide":
        h.engine.page_hidden(h.now)
        h.pump()
