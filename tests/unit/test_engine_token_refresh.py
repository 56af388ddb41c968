"""Token refresh in place (pyrt/engine/token_refresh.py)."""

from __future__ import annotations

from pyrt.engine.states import State
from pyrt.errors import (
    TokenError,
)
from pyrt.testing import FakePyrtServer
from tests.unit.engine_support import (
    Tokens,
    frames_of,
    online,
    token_server,
)

# ------------------------------------------------------------------ tokens refreshed in place


def test_a_token_is_refreshed_in_place_before_it_expires() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    assert h.socket is not None
    assert h.socket.protocols == ("bearer.t1",)
    h.advance(29.9)
    assert frames_of(h, "refresh") == []
    h.advance(0.2)  # 3/4 of 40 s
    assert [f["token"] for f in frames_of(h, "refresh")] == ["t2"]
    assert server.refreshed == ["t2"]
    h.advance(30.0)  # the answer said 40 s again: the next refresh comes 30 s after it
    assert server.refreshed == ["t2", "t3"]
    assert len(h.sockets) == 1
    assert h.state is State.OPEN
    assert h.engine.stats_snapshot().token_refreshes == 2
    assert h.errors == []


def test_without_a_ttl_in_welcome_nothing_is_refreshed() -> None:
    tokens = Tokens()
    h = online(FakePyrtServer(), token=tokens)  # a server without tokens announces no ttl
    h.advance(3600)
    assert frames_of(h, "refresh") == []
    assert tokens.issued == ["t1"]


def test_a_failing_token_callable_is_reported_and_tried_again() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    tokens.failing = True
    h.advance(30.0)
    assert len(h.errors) == 1
    assert isinstance(h.errors[0], TokenError)
    assert "auth service down" in str(h.errors[0])
    tokens.failing = False
    h.advance(2.4)  # a quarter of the 10 s left: not yet
    assert server.refreshed == []
    h.advance(0.2)
    assert server.refreshed == ["t2"]
    assert h.state is State.OPEN
    assert len(h.sockets) == 1


def test_a_refused_refresh_is_reported_and_tried_again_with_a_new_token() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0, refused=("t2",))
    h = online(server, token=tokens)
    h.advance(30.0)
    assert server.refreshed == []
    assert len(h.errors) == 1
    assert isinstance(h.errors[0], TokenError)
    assert "refused" in str(h.errors[0])
    h.advance(2.5)
    assert server.refreshed == ["t3"]


def test_an_unanswered_refresh_times_out_and_a_new_token_is_fetched() -> None:
    tokens, server = Tokens(), token_server(ttl=400.0)
    h = online(server, token=tokens, ack_timeout=5.0)
    h.advance(299.0)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True  # the refresh and its answer vanish
    h.advance(1.0)
    assert [f["token"] for f in frames_of(h, "refresh")] == ["t2"]
    sock.blackholed = False
    h.advance(5.0)  # its answer never came: a new token is fetched, not the old frame re-sent
    assert isinstance(h.errors[-1], TokenError)
    assert "in time" in str(h.errors[-1])
    h.advance(25.0)  # a quarter of the 95 s left
    assert server.refreshed == ["t3"]


def test_a_refresh_in_flight_is_forgotten_when_its_connection_goes() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True
    h.advance(30.0)
    h.drop()
    h.advance(5.0)  # reconnected with a fresh handshake token
    assert h.state is State.OPEN
    assert len(h.sockets) == 2
    assert h.sockets[1].protocols == ("bearer.t3",)
    assert [f["token"] for f in frames_of(h, "refresh")] == ["t2"]  # never re-sent
    assert h.engine.pending_acks == 0


def test_an_expired_token_reconnects_with_a_fresh_one() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens)
    h.drop(4001, "token expired: reconnect with a fresh token", was_clean=True)
    h.advance(5.0)
    assert h.state is State.OPEN
    assert [s.protocols for s in h.sockets] == [("bearer.t1",), ("bearer.t2",)]


def test_refresh_frames_and_reads_are_never_persisted() -> None:
    tokens, server = Tokens(), token_server(ttl=40.0)
    h = online(server, token=tokens, persist=True)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True
    h.send_with_ack("keep me")
    h.advance(30.0)  # a refresh is in flight, unanswered
    assert h.engine.pending_acks == 2
    saved = h.stored()
    assert [frame.kind for frame in saved.frames] == ["message"]
    assert h.saved
    assert not any("t2" in repr(changes) for changes in h.saved)  # no write held the token
