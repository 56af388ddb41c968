"""Flow control end to end on a fake clock (docs/reliability.md, scenario 12): a real
:class:`~pyrt.engine.websocket.WebSocketEngine` and a :class:`~pyrt.testing.FakePyrtServer` that
enforces its limits with the rules of ``serve.py`` (:mod:`pyrt.session.admission`), joined by a simulated
TCP link: every frame takes a latency plus a random jitter, frames stay in order on one
connection, and a reset loses whatever is in flight.

For any schedule of user calls (bursts of ``send_with_ack``, ``publish`` and ``send``), resets,
and server limits: when the server enforces what it advertises, it never refuses a frame (the
client paces with a margin); when it is stricter than it says (or the link bunches frames more
than the margin absorbs), refused frames are sent again in order, and nothing is lost or
duplicated, no caller sees a retryable refusal, and nobody is closed with 1008.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.engine.backoff import Backoff
from pyrt.engine.websocket import (
    NO_MESSAGE,
    CloseSocket,
    DeliverPublication,
    OpenSocket,
    RejectAck,
    ReportError,
    ResolveAck,
    SendFrame,
    WebSocketEngine,
)
from pyrt.errors import ServerError
from pyrt.testing import AckWaiter, FakePyrtServer, ServerConnection
from pyrt.wire.limits import ServerLimits
from tests.faults.scenario import emit

CHANNEL = "flow"


@dataclass
class Link:
    """One client and the fake server over a simulated link (see the module docstring)."""

    engine: WebSocketEngine
    server: FakePyrtServer
    rng: random.Random
    latency: float = 0.005
    jitter: float = 0.02
    now: float = 0.0
    conn: ServerConnection | None = None
    socket: int = 0  # generation of the current socket: events of older ones are dropped
    errors: list[Exception] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)  # application messages (echoes)
    delivered: list[Any] = field(default_factory=list)  # publications of CHANNEL
    resets: int = 0
    _events: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    _up: float = 0.0  # when the last client frame reaches the server (TCP keeps order)
    _down: float = 0.0

    def __post_init__(self) -> None:
        self.server.clock = lambda: self.now

    # -- the world

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def delay(self) -> float:
        return self.latency + self.jitter * self.rng.random()

    def run(self, until: float) -> None:
        """Let time pass to ``until``: link events and the engine's timer, in time order."""
        while True:
            deadline = self.engine.next_deadline()
            event = self._events[0][0] if self._events else None
            nxt = min(t for t in (deadline, event, until + 1) if t is not None)
            if nxt > until:
                break
            self.now = max(self.now, nxt)
            if event is not None and event <= self.now:
                heapq.heappop(self._events)[2]()
            else:
                self.engine.tick(self.now)
            self.perform()
        self.now = until

    def perform(self) -> None:
        for action in self.engine.actions():
            kind = type(action)
            if kind is SendFrame:
                assert isinstance(action, SendFrame)
                self.transmit(action.frame)
            elif kind is OpenSocket:
                self.socket += 1
                socket = self.socket
                self.at(self.now + self.delay(), lambda socket=socket: self.accept(socket))
            elif kind is CloseSocket:
                assert isinstance(action, CloseSocket)
                self.cut()
                if not action.detach:
                    self.at(self.now + self.delay(), functools.partial(self.close_done, action.code))
            elif kind in (ResolveAck, RejectAck):
                waiter = action.handle  # type: ignore[union-attr]
                assert isinstance(waiter, AckWaiter)
                waiter.outcomes += 1
                if isinstance(action, ResolveAck):
                    waiter.value = action.value
                else:
                    assert isinstance(action, RejectAck)
                    waiter.error = action.error
            elif kind is ReportError:
                assert isinstance(action, ReportError)
                self.errors.append(action.error)
            elif kind is DeliverPublication:
                assert isinstance(action, DeliverPublication)
                self.delivered.append(action.publication.data)

    def close_done(self, code: int) -> None:
        self.engine.closed(code, "", self.now)
        self.perform()

    def accept(self, socket: int) -> None:
        if socket != self.socket:
            return
        self.conn = self.server.accept()
        self._up = self._down = self.now
        self.engine.opened(self.now)
        self.perform()
        self.answer(socket)

    def transmit(self, frame: str | bytes) -> None:
        socket = self.socket
        self._up = max(self._up, self.now + self.delay())
        self.at(self._up, lambda: self.to_server(socket, frame))

    def to_server(self, socket: int, frame: str | bytes) -> None:
        if socket != self.socket or self.conn is None:
            return  # lost in a reset
        self.conn.handle(frame)
        self.answer(socket)

    def answer(self, socket: int) -> None:
        conn = self.conn
        assert conn is not None
        while conn.outgoing:
            frame = conn.outgoing.popleft()
            self._down = max(self._down, self.now + self.delay())
            self.at(self._down, lambda frame=frame: self.to_client(socket, frame))
        if conn.close_code is not None:
            code, reason = conn.close_code, conn.close_reason
            self.at(self._down + 1e-6, lambda: self.closed_by_server(socket, code, reason))

    def to_client(self, socket: int, frame: str | bytes) -> None:
        if socket != self.socket:
            return
        message = self.engine.received(frame, self.now)
        if message is not NO_MESSAGE:
            self.received.append(message)
        self.perform()

    def closed_by_server(self, socket: int, code: int, reason: str) -> None:
        if socket == self.socket:
            self.cut()
            self.engine.closed(code, reason, self.now, True)
            self.perform()

    def cut(self) -> None:
        """The socket is gone: what is in flight either way is lost."""
        self.socket += 1
        if self.conn is not None:
            self.conn.open = False
            self.conn = None

    def reset(self) -> None:
        """The network breaks the connection (both ends see it; the client as 1006)."""
        if self.conn is not None:
            self.resets += 1
            self.cut()
            self.engine.closed(1006, "", self.now)
            self.perform()


SERVE_PY = ServerLimits(rate=200.0, burst=400, window=1000, max_bytes=1 << 20, subscriptions=256)

OPS = st.one_of(
    st.tuples(st.just("acked"), st.integers(1, 400)),
    st.tuples(st.just("publish"), st.integers(1, 300)),
    st.tuples(st.just("send"), st.integers(1, 100)),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=2.0)),
    st.tuples(st.just("reset")),
)


@dataclass
class Outcome:
    link: Link
    acked: list[AckWaiter]
    published: list[AckWaiter]
    sent: int  # fire-and-forget messages


def play(ops: list[tuple[Any, ...]], seed: int, advertised: ServerLimits, enforced: ServerLimits,
         jitter: float = 0.02) -> Outcome:  # fmt: skip
    server = FakePyrtServer(limits=advertised, enforce=enforced)
    engine = WebSocketEngine(
        heartbeat=None,
        queue_limit=100_000,
        ack_retries=1_000,
        ack_timeout=30.0,
        backoff=Backoff(initial=0.05, maximum=0.5),
        rng=random.Random(seed).random,
    )
    link = Link(engine, server, random.Random(seed + 1), jitter=jitter)
    engine.subscribe(CHANNEL, print, 0.0, since="0")
    engine.connect(0.0)
    link.perform()
    acked: list[AckWaiter] = []
    published: list[AckWaiter] = []
    sent = 0
    for op in ops:
        kind = op[0]
        if kind == "acked":
            for _ in range(op[1]):
                waiter = AckWaiter()
                engine.send_with_ack({"k": "ack", "n": len(acked)}, link.now, waiter)
                acked.append(waiter)
        elif kind == "publish":
            for _ in range(op[1]):
                waiter = AckWaiter()
                engine.publish(CHANNEL, len(published), link.now, waiter)
                published.append(waiter)
        elif kind == "send":
            for _ in range(op[1]):
                frame = engine.send({"k": "ff", "n": sent}, link.now)
                if frame is not None:  # the hot path hands the frame straight back
                    link.transmit(frame)
                sent += 1
        elif kind == "wait":
            link.run(link.now + op[1])
        elif kind == "reset":
            link.reset()
        link.perform()
    # Then let everything drain (a server stricter than it says takes a while), and a little more.
    backlog = len(acked) + len(published) + sent
    give_up = link.now + 30.0 + backlog
    while link.now < give_up and (engine.queue_length or any(not w.done for w in acked + published)):
        link.run(link.now + 1.0)
    link.run(link.now + 2.0)
    return Outcome(link, acked, published, sent)


def check_delivery(out: Outcome) -> tuple[list[int], list[Any]]:
    """Exactly once and in order for everything acknowledged; returns the fire-and-forget
    messages the server handled and the errors reported."""
    server = out.link.server
    handled_acked = [d["n"] for d in server.handled if isinstance(d, dict) and d.get("k") == "ack"]
    assert handled_acked == list(range(len(out.acked)))
    assert [w.outcomes for w in out.acked] == [1] * len(out.acked)
    assert all(w.error is None for w in out.acked + out.published)  # no caller saw a refusal
    assert [data for _, _, data in server.log.get(CHANNEL, [])] == list(range(len(out.published)))
    assert [w.value for w in out.published] == [o for o, _, _ in server.log.get(CHANNEL, [])]
    assert out.link.delivered == list(range(len(out.published)))  # the subscription, once each
    assert server.abuse_closes == 0
    handled_ff = [d["n"] for d in server.handled if isinstance(d, dict) and d.get("k") == "ff"]
    assert handled_ff == sorted(set(handled_ff))  # in order, never twice
    return handled_ff, out.link.errors


@settings(max_examples=120, deadline=None)
@given(
    ops=st.lists(OPS, max_size=12),
    seed=st.integers(0, 2**31),
    rate=st.sampled_from([20.0, 200.0, 1000.0]),
    burst=st.sampled_from([10, 400, 2000]),
)
def test_pacing_never_trips_a_server_that_enforces_what_it_advertises(
    ops: list[tuple[Any, ...]], seed: int, rate: float, burst: int
) -> None:
    limits = ServerLimits(rate=rate, burst=burst, window=1000)
    # The margin absorbs frames the link bunches together within half a burst's worth of the
    # client's rate (1.1 s with serve.py's defaults); beyond that, see the next property.
    margin = (burst - burst // 2) / (0.9 * rate)
    out = play(ops, seed, limits, limits, jitter=min(0.05, margin))
    handled_ff, errors = check_delivery(out)
    assert out.link.server.refusals == []
    assert errors == []
    if out.link.resets == 0:
        assert handled_ff == list(range(out.sent))  # nothing lost either


@settings(max_examples=120, deadline=None)
@given(
    ops=st.lists(OPS, max_size=12),
    seed=st.integers(0, 2**31),
    enforced_burst=st.sampled_from([1, 5, 40]),
    enforced_rate=st.sampled_from([50.0, 150.0]),
)
def test_a_stricter_server_refuses_but_nothing_is_lost_reordered_or_closed(
    ops: list[tuple[Any, ...]], seed: int, enforced_burst: int, enforced_rate: float
) -> None:
    enforced = ServerLimits(rate=enforced_rate, burst=enforced_burst, window=1000)
    out = play(ops, seed, SERVE_PY, enforced)
    handled_ff, errors = check_delivery(out)
    refused_ff = [e for e in errors if isinstance(e, ServerError) and e.code == "rate_limited"]
    assert len(refused_ff) == len(errors)  # the only reports: refused fire-and-forget messages
    if out.link.resets == 0:
        assert len(handled_ff) + len(refused_ff) == out.sent  # each one handled or reported


def test_a_burst_against_serve_py_defaults_on_a_jittery_link() -> None:
    """The figures of scenario 12: 2,000 acked messages and 2,000 publishes at once."""
    ops = [("acked", 2000), ("publish", 2000), ("send", 200)]
    out = play(ops, seed=12, advertised=SERVE_PY, enforced=SERVE_PY, jitter=0.05)
    check_delivery(out)
    stricter = play(ops, 12, SERVE_PY, ServerLimits(rate=150.0, burst=50, window=1000), jitter=0.05)
    _, errors = check_delivery(stricter)
    server = stricter.link.server
    emit(
        "12-flow-control-unit",
        messages=2000,
        publishes=2000,
        fire_and_forget=200,
        honest_server_refusals=len(out.link.server.refusals),
        stricter_server_refusals=len(server.refusals),
        stricter_server_fire_and_forget_reported=len(errors),
        abuse_closes=server.abuse_closes,
        stats=json.loads(json.dumps(stricter.link.engine.stats_snapshot().as_dict())),
    )
    assert out.link.server.refusals == []
    assert server.refusals  # the stricter server did refuse, and nothing above broke
