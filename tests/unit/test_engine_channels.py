"""Channels (pyrt/engine/channels.py): subscriptions that recover, publish, presence."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pyrt.engine.states import State
from pyrt.errors import (
    ChannelRefused,
    ClientClosedError,
    EncodeError,
    UnsupportedByProtocol,
)
from pyrt.testing import EngineHarness, FakePyrtServer
from pyrt.wire.frames import Member
from tests.unit.engine_support import (
    NO_HB,
    frames_of,
    online,
)

# ------------------------------------------------------------------------------ channels


def test_publications_reach_the_handler_in_order() -> None:
    server = FakePyrtServer()
    h = online(server)
    got = h.subscribe("news")
    for n in range(3):
        server.publish("news", n)
    h.pump()
    assert [p.data for p in got] == [0, 1, 2]
    assert [p.offset for p in got] == ["1-1", "1-2", "1-3"]


def test_a_subscription_survives_a_disconnect_without_gaps_or_duplicates() -> None:
    server = FakePyrtServer()
    h = online(server)
    got = h.subscribe("news")
    server.publish("news", "before")
    h.pump()
    h.drop()
    server.publish("news", "missed 1")
    server.publish("news", "missed 2")
    h.advance(1.0)
    server.publish("news", "after")
    h.pump()
    assert [p.data for p in got] == ["before", "missed 1", "missed 2", "after"]
    assert all(p.recovered for p in got)
    assert frames_of(h, "subscribe")[-1]["since"] == "1-1"


def test_an_overlapping_replay_is_deduplicated() -> None:
    h = EngineHarness(**NO_HB)
    h.connect()
    h.open()
    got = h.subscribe("c")
    h.receive('{"type":"subscribed","channel":"c","offset":"0","recovered":true}')
    for n in (1, 2, 1, 2, 3):
        h.receive(json.dumps({"type": "publication", "channel": "c", "offset": f"5-{n}", "data": n}))
    assert [p.data for p in got] == [1, 2, 3]


def test_a_recovery_the_server_could_not_make_is_flagged_on_the_next_publication() -> None:
    server = FakePyrtServer(retention=2)
    h = online(server)
    got = h.subscribe("c")
    server.publish("c", 1)
    h.pump()
    h.drop()
    for n in range(2, 7):
        server.publish("c", n)
    h.advance(1.0)
    assert [p.data for p in got] == [1, 5, 6]
    assert [p.recovered for p in got] == [True, False, True]
    assert h.confirmed[-1].recovered is False


def test_subscribing_before_open_sends_the_subscription_on_open() -> None:
    server = FakePyrtServer()
    server.publish("c", "old")
    h = EngineHarness(server=server, **NO_HB)
    got = h.subscribe("c", since="0")
    h.connect()
    assert [p.data for p in got] == ["old"]


def test_unsubscribed_channels_are_not_restored() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.subscribe("c")
    h.unsubscribe("c")
    h.drop()
    h.advance(1.0)
    assert len(frames_of(h, "subscribe")) == 1
    assert h.engine.unsubscribe("c", h.now) is False


def test_publish_resolves_with_the_offset_and_is_not_repeated_on_resend() -> None:
    server = FakePyrtServer()
    h = online(server)
    h.blackhole()
    waiter = h.publish("c", {"x": 1})
    h.drop()
    h.advance(1.0)
    assert waiter.value == "1-1"
    h.sockets[-1].conn.handle(h.sockets[-1].sent[-1])  # type: ignore[union-attr]  # a third copy
    assert len(server.log["c"]) == 1


def test_channels_need_the_pyrt_protocol() -> None:
    h = EngineHarness(protocol="raw", **NO_HB)
    with pytest.raises(UnsupportedByProtocol, match="no channels"):
        h.subscribe("c")


# ------------------------------------------------------------------ tokens refreshed in place


def test_a_refused_subscription_is_reported_and_forgotten() -> None:
    h = online(FakePyrtServer(forbidden=["secret"]))
    h.subscribe("secret")
    h.subscribe("news")
    assert len(h.errors) == 1
    error = h.errors[0]
    assert isinstance(error, ChannelRefused)
    assert error.channel == "secret"
    assert error.code == "forbidden"
    h.drop()
    h.advance(5.0)
    assert [f["channel"] for f in frames_of(h, "subscribe")] == ["secret", "news", "news"]
    assert h.engine.snapshot().offsets.keys() <= {"news"}


# ------------------------------------------------------------------------------------- presence


def names(events: list[tuple[str, Member]]) -> list[tuple[str, Any]]:
    return [(kind, member.info) for kind, member in events]


def two_clients(server: FakePyrtServer) -> tuple[EngineHarness, EngineHarness]:
    """Two clients of one server, with their own random keys (each a member of its own)."""
    a = online(server, rng=random.Random(1).random)
    b = online(server, rng=random.Random(2).random)
    return a, b


def test_a_subscription_with_presence_sees_who_is_there_and_who_comes_and_goes() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    joined = alice.join("room", {"name": "alice"})
    assert isinstance(joined.value, str)
    assert joined.error is None
    bob.subscribe("room", presence=True)
    assert names(bob.presence_events["room"]) == [("join", {"name": "alice"})]
    carol = online(server, rng=random.Random(3).random)
    carol.join("room", {"name": "carol"})
    alice.join("room", {"name": "alice", "status": "away"})  # an update
    carol.leave("room")
    bob.pump()  # bob reads what the server sent meanwhile
    assert names(bob.presence_events["room"])[1:] == [
        ("join", {"name": "carol"}),
        ("join", {"name": "alice", "status": "away"}),
        ("leave", {"name": "carol"}),
    ]
    assert [m.info for m in bob.engine.members("room")] == [{"name": "alice", "status": "away"}]
    assert bob.engine.members("nowhere") == []


def test_a_client_that_reconnects_stays_one_member_and_nobody_sees_it_flap() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    alice.join("room", {"name": "alice"})
    bob.subscribe("room", presence=True)
    alice.drop()  # lost without a close frame: the server keeps the member for its grace
    alice.advance(5.0)  # reconnected and joined again under the same key
    assert alice.state is State.OPEN
    assert len(frames_of(alice, "presence_join")) == 2
    server.expire_lost()
    bob.pump()
    assert names(bob.presence_events["room"]) == [("join", {"name": "alice"})]
    assert len(bob.engine.members("room")) == 1


def test_after_a_reconnect_the_changes_missed_meanwhile_are_reported_once() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    alice.join("room", {"name": "alice"})
    bob.subscribe("room", presence=True)
    bob.drop()
    carol = online(server, rng=random.Random(3).random)
    carol.join("room", {"name": "carol"})
    alice.leave("room")
    bob.advance(5.0)  # back: the new snapshot is compared with what bob knew
    assert names(bob.presence_events["room"]) == [
        ("join", {"name": "alice"}),
        ("leave", {"name": "alice"}),
        ("join", {"name": "carol"}),
    ]


def test_a_clean_close_leaves_at_once_and_a_lost_connection_after_the_grace() -> None:
    server = FakePyrtServer()
    alice, bob = two_clients(server)
    carol = online(server, rng=random.Random(3).random)
    bob.subscribe("room", presence=True)
    alice.join("room", "alice")
    carol.join("room", "carol")
    alice.close()
    bob.pump()
    assert names(bob.presence_events["room"])[-1] == ("leave", "alice")
    carol.drop()
    carol.close()  # it never comes back
    bob.pump()
    assert [m.info for m in bob.engine.members("room")] == ["carol"]  # still there, for the grace
    server.expire_lost()
    bob.pump()
    assert names(bob.presence_events["room"])[-1] == ("leave", "carol")


def test_a_join_made_offline_is_sent_when_connected_and_resolves_once() -> None:
    server = FakePyrtServer()
    h = EngineHarness(server=server, heartbeat=None)
    waiter = h.join("room", {"name": "early"})
    assert not waiter.done
    h.connect()
    assert waiter.outcomes == 1
    assert isinstance(waiter.value, str)
    assert [m.info for m in h.presence("room").value] == [{"name": "early"}]


def test_a_join_in_flight_when_the_connection_drops_resolves_on_the_next_one() -> None:
    server = FakePyrtServer()
    h = online(server)
    sock = h.socket
    assert sock is not None
    sock.blackholed = True
    waiter = h.join("room", "me")
    h.drop()
    assert not waiter.done
    h.advance(5.0)
    assert waiter.outcomes == 1
    assert waiter.error is None
    assert len(frames_of(h, "presence_join")) == 2


def test_a_refused_join_fails_and_is_not_asked_again() -> None:
    server = FakePyrtServer(forbidden=["vip"])
    h = online(server)
    waiter = h.join("vip", "me")
    assert isinstance(waiter.error, ChannelRefused)
    assert waiter.error.channel == "vip"
    h.drop()
    h.advance(5.0)
    assert len(frames_of(h, "presence_join")) == 1


def test_info_that_cannot_be_sent_fails_before_anything_is_sent() -> None:
    h = online(FakePyrtServer())
    with pytest.raises(EncodeError):
        h.join("room", {1, 2})
    with pytest.raises(ValueError, match="channel"):
        h.join("no spaces", None)
    assert frames_of(h, "presence_join") == []


def test_leaving_before_the_join_was_confirmed_fails_the_join() -> None:
    h = EngineHarness(server=FakePyrtServer(), heartbeat=None)
    join = h.join("room", "me")
    leave = h.leave("room")
    assert isinstance(join.error, ClientClosedError)
    h.connect()
    assert leave.error is None
    assert leave.outcomes == 1
    assert frames_of(h, "presence_join") == []


def test_closing_fails_joins_still_waiting() -> None:
    h = EngineHarness(server=FakePyrtServer(), heartbeat=None)
    join = h.join("room", "me")
    h.close()
    assert isinstance(join.error, ClientClosedError)
