"""The engine over several transports: fallback when WebSockets fail, the probe back, memory."""

from __future__ import annotations

from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.states import State
from pyrt.engine.transport_choice import TransportPolicy
from pyrt.errors import TransportUnavailable
from pyrt.testing import EngineHarness, FakePyrtServer

POLICY = TransportPolicy(probe_first=5.0, probe_max=20.0, remember_for=3600.0)
BOTH = ("websocket", "http")


def online(**options: object) -> EngineHarness:
    server = FakePyrtServer()
    h = EngineHarness(
        server=server,
        heartbeat=None,
        transports=BOTH,
        transport_policy=POLICY,
        **options,  # type: ignore[arg-type]
    )
    return h


def test_a_refused_upgrade_moves_to_http_saying_why_and_everything_works_there() -> None:
    h = online()
    h.blocked["websocket"] = "refuse"
    h.connect()
    h.advance(0.0)
    assert [s.transport for s in h.sockets] == ["websocket"]
    assert h.state is State.RECONNECTING
    assert "WebSocket did not come up (closed with code 1006): trying HTTP" in h.reconnects[-1].reason
    assert [str(e) for e in h.errors if isinstance(e, TransportUnavailable)] == [
        "WebSocket did not come up (closed with code 1006): trying HTTP"
    ]
    h.advance(1.0)
    assert h.sockets[-1].transport == "http"
    assert h.state is State.OPEN
    reply = h.send_with_ack({"n": 1})
    h.advance(0.0)
    assert reply.value == {"n": 1}
    assert h.engine.transport == "http"
    assert h.engine.stats.fallbacks == 1


def test_while_the_server_is_down_each_transport_fails_in_turn_and_on_error_hears_it_once() -> None:
    h = online()
    h.connect()
    h.advance(0.0)
    h.server.accepting = False  # the server goes away: WebSockets and HTTP alike fail
    h.drop()
    for _ in range(20):
        h.advance(1.0)
    moves = [r.reason for r in h.reconnects if "trying" in r.reason]
    assert len(moves) >= 4  # each attempt says where the next goes
    assert len([e for e in h.errors if isinstance(e, TransportUnavailable)]) == 1
    h.server.accepting = True
    h.advance(30.0)
    assert h.state is State.OPEN
    h.server.accepting = False  # down again after a connection came up: said again, once
    h.drop()
    for _ in range(20):
        h.advance(1.0)
    assert len([e for e in h.errors if isinstance(e, TransportUnavailable)]) == 2


def test_a_socket_that_opens_and_stays_silent_moves_to_http_at_the_connect_timeout() -> None:
    h = online(connect_timeout=3.0)
    h.blocked["websocket"] = "silent"  # "101 then silence"
    h.connect()
    h.advance(2.9)
    assert h.state is State.CONNECTING
    h.advance(0.1)
    assert "no welcome came within 3 s" in h.reconnects[-1].reason
    assert "trying HTTP" in h.reconnects[-1].reason
    h.advance(1.0)
    assert h.state is State.OPEN
    assert h.engine.transport == "http"


def test_on_http_websocket_is_probed_and_the_client_moves_back_without_losing_anything() -> None:
    h = online()
    h.blocked["websocket"] = "refuse"
    h.connect()
    h.advance(1.0)
    received: list[object] = []
    h.subscribe("news", since="0")
    h.server.publish("news", 1)  # type: ignore[union-attr]
    h.advance(0.0)
    assert h.engine.transport == "http"
    assert h.probes == []  # up at most 1 s ago: the first probe comes 5 s after coming up
    h.advance(5.0)
    assert h.probes == ["websocket"]  # refused still: probe again later, twice as late
    assert h.remembered[-1].transport == "http"  # confirmed: the next page goes straight to http
    assert h.remembered[-1].seconds == 3600.0
    del h.blocked["websocket"]  # the network changes
    pending = h.send_with_ack({"n": 2})
    h.advance(10.0)
    assert h.probes == ["websocket", "websocket"]
    h.advance(0.0)
    assert h.engine.transport == "websocket"
    assert h.state is State.OPEN
    assert h.sockets[-1].transport == "websocket"
    assert h.engine.stats.upgrades == 1
    assert h.remembered[-1].transport is None  # forget the fallback
    assert pending.value == {"n": 2}
    h.server.publish("news", 2)  # type: ignore[union-attr]
    h.advance(0.0)
    received = [p.data for p in h.publications["news"]]
    assert received == [1, 2]  # across the move: nothing lost, nothing twice
    assert h.server.handled == [{"n": 2}]  # type: ignore[union-attr]


def test_a_remembered_fallback_is_used_from_the_first_attempt() -> None:
    h = online()
    h.engine.remembered("http")
    h.connect()
    h.advance(0.0)
    assert [s.transport for s in h.sockets] == ["http"]
    assert h.state is State.OPEN


def test_a_connection_that_falls_silent_twice_soon_after_coming_up_moves_on() -> None:
    h = EngineHarness(
        server=FakePyrtServer(),
        heartbeat=Heartbeat(interval=1.0, timeout=1.0),
        transports=BOTH,
        transport_policy=TransportPolicy(quick_death=15.0),
    )
    h.connect()
    for _ in range(2):
        step_until(h, State.OPEN, within=3.0)
        assert h.engine.transport == "websocket"
        h.blackhole()  # frames stop passing right after the handshake
        step_until(h, State.RECONNECTING, within=2.1)  # a ping after 1 s, no answer within 1 s
    step_until(h, State.OPEN, within=3.0)
    assert h.engine.transport == "http"
    assert "fell silent 2 times within 15 s of coming up: trying HTTP" in h.reconnects[-1].reason
    assert "(heartbeat timeout); " in h.reconnects[-1].reason


def test_a_reset_after_a_while_keeps_the_transport() -> None:
    h = online()
    h.connect()
    h.advance(0.0)
    h.drop()
    h.advance(1.0)
    h.drop()
    h.advance(1.0)
    assert h.engine.transport == "websocket"
    assert not [e for e in h.errors if isinstance(e, TransportUnavailable)]


def test_a_failure_to_prepare_the_connection_is_not_the_transports_fault() -> None:
    h = EngineHarness(heartbeat=None, transports=BOTH)  # no server: the socket stays on its way
    h.connect()
    h.engine.prepare_failed("preparing the connection failed: no token", h.now)
    h.pump()
    assert h.state is State.RECONNECTING
    h.advance(1.0)
    assert [s.transport for s in h.sockets] == ["websocket", "websocket"]


def test_raw_mode_has_one_transport() -> None:
    h = EngineHarness(heartbeat=None, protocol="raw")
    h.connect()
    h.drop()
    h.advance(1.0)
    assert [s.transport for s in h.sockets] == ["websocket", "websocket"]


def step_until(h: EngineHarness, state: State, within: float) -> None:
    """Let time pass in steps of 0.05 s until the engine is in ``state``, at most ``within`` s."""
    waited = 0.0
    while h.state is not state:
        assert waited < within, f"still {h.state} after {within} s"
        h.advance(0.05)
        waited += 0.05
