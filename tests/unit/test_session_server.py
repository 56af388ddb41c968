"""The server's session on a fake clock: what it answers, in which order, and when it closes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.session import actions as act
from pyrt.session import messages
from pyrt.session.config import Peer, SessionConfig
from pyrt.session.server import ServerSession
from pyrt.wire import binary
from pyrt.wire.frames import HistoryPage, Publication, RawJSON
from pyrt.wire.limits import ServerLimits


@dataclass(frozen=True)
class Grant:
    subject: str | None
    issued: float
    expires: float
    caps: tuple[str, ...] = ("*",)


class Authority:
    """Tokens are ``"<subject>:<issued>:<expires>:<cap>,<cap>"``; a cap is a channel prefix."""

    tokens = True

    def verify(self, token: str, wall: float) -> Grant | None:
        try:
            subject, issued, expires, caps = token.split(":")
        except ValueError:
            return None
        if float(expires) <= wall:
            return None
        return Grant(subject, float(issued), float(expires), tuple(caps.split(",")))

    def allowed(self, grant: Any, channel: str, action: str) -> bool:
        if channel.startswith("_") and action != "subscribe":
            return False
        caps = grant.caps if grant is not None else ("*",)
        return any(cap == "*" or channel.startswith(cap) for cap in caps)


class Quota:
    """A fixed number of tokens per identity, then ``wait`` seconds."""

    def __init__(self, tokens: int, wait: float = 2.0) -> None:
        self.left: dict[str, float] = {}
        self.tokens = tokens
        self.wait_for = wait

    def wait(self, key: str, now: float, cost: float = 1.0) -> float:
        left = self.left.get(key, self.tokens)
        if left < cost:
            return self.wait_for
        self.left[key] = left - cost
        return 0.0


class Driver:
    """Plays the server around one session, on a fake clock; records what the client receives."""

    def __init__(
        self, config: SessionConfig | None = None, grant: Grant | None = None, **kwargs: Any
    ) -> None:
        self.now = 100.0
        self.session = ServerSession(
            config or SessionConfig(heartbeat=10.0),
            Peer("s1", "ip:1.2.3.4", "i1:s1"),
            Authority(),
            self.now,
            grant=grant,
            wall_offset=1_000_000.0,
            **kwargs,
        )
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.aborted = False
        self.pending: list[act.Action] = []  # broker and application actions not carried out yet
        self.session.start(self.now)
        self.pump()

    def pump(self) -> None:
        for action in self.session.actions():
            if isinstance(action, act.Send):
                text = action.text
                self.sent.append(json.loads(text) if isinstance(text, str) else binary.unpack(text))
            elif isinstance(action, act.Close):
                self.closed = (action.code, action.reason)
            elif isinstance(action, act.Abort):
                self.aborted = True
            else:
                self.pending.append(action)

    def frame(self, **fields: Any) -> None:
        self.session.received(json.dumps(fields), self.now)
        self.pump()

    def take(self) -> list[dict[str, Any]]:
        out, self.sent = self.sent, []
        return out

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.session.tick(self.now)
        self.pump()

    def next(self, kind: type) -> Any:
        for action in self.pending:
            if isinstance(action, kind):
                self.pending.remove(action)
                return action
        raise AssertionError(f"no {kind.__name__} pending: {self.pending}")


def test_the_welcome_names_the_session_and_the_tokens_lifetime() -> None:
    limits = ServerLimits(rate=200.0, burst=400)
    d = Driver(SessionConfig(server="me", heartbeat=20.0, limits=limits), Grant("ann", 0.0, 1_000_160.0))
    assert d.take() == [
        {
            "type": "welcome",
            "session": "s1",
            "server": "me",
            "heartbeat": 20.0,
            "limits": {"rate": 200.0, "burst": 400},
            "ttl": 60.0,
        }
    ]


def test_a_token_expires_on_the_clock_and_the_connection_closes_with_4001() -> None:
    d = Driver(SessionConfig(heartbeat=0), Grant("ann", 0.0, 1_000_130.0))  # 30 s left at 100
    d.take()
    assert d.session.next_deadline() == 130.0
    d.advance(29.9)
    assert d.closed is None
    d.advance(0.1)
    assert d.closed == (4001, "token expired: reconnect with a fresh token")
    d.frame(type="ping", t=1)
    assert d.take() == []  # nothing is answered once closing


def test_a_refresh_moves_the_expiry_and_answers_the_new_ttl() -> None:
    d = Driver(SessionConfig(heartbeat=0), Grant("ann", 10.0, 1_000_130.0))
    d.take()
    d.advance(20.0)
    d.frame(type="refresh", id="r1", token="ann:20:1000300:*")
    assert d.take() == [{"type": "ack", "id": "r1", "ok": True, "data": {"ttl": 180.0}}]
    assert d.session.next_deadline() == 300.0
    d.advance(60.0)
    assert d.closed is None


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("garbage", "bad or expired token"),
        ("ann:20:1000050:*", "bad or expired token"),  # expired already
        ("bob:20:1000300:*", "a refresh must name the same subject"),
        ("ann:5:1000300:*", "a refresh must not be older than the token in use"),
    ],
)
def test_a_refresh_that_cannot_be_taken_is_unauthorized_and_changes_nothing(token: str, why: str) -> None:
    d = Driver(grant=Grant("ann", 10.0, 1_000_130.0))
    d.take()
    d.frame(type="refresh", id="r1", token=token)
    assert d.take() == [{"type": "error", "code": "unauthorized", "message": why, "id": "r1"}]
    assert d.session.next_deadline() == 130.0


def test_refreshes_are_rate_limited_before_the_token_is_even_read() -> None:
    d = Driver(SessionConfig(refresh_rate=1.0, refresh_burst=2), grant=Grant("ann", 10.0, 1_000_900.0))
    d.take()
    for n in range(3):
        d.frame(type="refresh", id=f"r{n}", token="ann:20:1000300:*")
    answers = d.take()
    assert [a["type"] for a in answers] == ["ack", "ack", "error"]
    assert answers[2]["code"] == "rate_limited"
    assert answers[2]["retry_after"] == 1.0


def test_a_narrower_token_ends_what_it_no_longer_allows() -> None:
    d = Driver(grant=Grant("ann", 10.0, 1_000_900.0, ("room", "news")))
    d.frame(type="subscribe", channel="news")
    d.session.subscribed(d.next(act.Subscribe).ticket, "0", True, None, None, d.now)
    d.frame(type="presence_join", id="j1", channel="news", info=1)
    d.session.info_shown(d.next(act.ShowInfo).ticket, 1, d.now)
    d.pump()
    d.session.joined(d.next(act.Join).ticket, "ok", d.now)
    d.pump()
    d.take()
    d.frame(type="refresh", id="r1", token="ann:20:1000900:room")
    answers = d.take()
    assert {(a["type"], a.get("code"), a.get("channel")) for a in answers} == {
        ("error", "forbidden", "news"),
        ("ack", None, None),
    }
    assert [type(a) for a in d.pending] == [act.Unsubscribe, act.Release]
    assert d.pending[1] == act.Release("news", d.pending[1].member, "i1:s1", clean=True)


def test_a_quiet_client_is_pinged_and_a_silent_one_dropped_without_a_close_frame() -> None:
    d = Driver(SessionConfig(heartbeat=10.0))
    d.take()
    d.advance(9.9)
    assert d.take() == []
    d.advance(0.2)
    assert d.take() == [{"type": "ping", "t": round(d.now * 1000)}]
    d.advance(10.0)
    assert d.take() == []  # one ping per silence
    d.advance(10.0)
    assert d.aborted
    assert d.session.stats.drops["heartbeat"] == 1


def test_any_frame_is_proof_of_life() -> None:
    d = Driver(SessionConfig(heartbeat=10.0))
    for _ in range(10):
        d.advance(8.0)
        d.frame(type="pong", t=0)
    assert not d.aborted
    assert d.take()[1:] == []


def test_frames_after_publications_in_flight_wait_for_their_answers_and_keep_the_order() -> None:
    d = Driver()
    d.take()
    d.frame(type="publish", id="p1", channel="c", data=1)
    d.frame(type="publish", id="p2", channel="c", data=2)
    assert d.session.reading  # publications travel together
    d.frame(type="ping", t=7)
    assert not d.session.reading
    assert d.take() == []
    first, second = d.next(act.Publish), d.next(act.Publish)
    assert (first.data_json, second.data_json) == ("1", "2")
    d.session.published(second.ticket, "1-2", False, d.now)
    d.pump()
    d.session.published(first.ticket, "1-1", False, d.now)
    d.pump()
    assert d.take() == [
        {"type": "ack", "id": "p2", "ok": True, "data": {"offset": "1-2"}},
        {"type": "ack", "id": "p1", "ok": True, "data": {"offset": "1-1"}},
        {"type": "pong", "t": 7},
    ]
    assert d.session.reading


def test_the_publish_window_holds_the_reader_when_full() -> None:
    d = Driver(SessionConfig(publish_window=2))
    for n in range(3):
        d.frame(type="publish", id=f"p{n}", channel="c", data=n)
    assert not d.session.reading
    assert len([a for a in d.pending if isinstance(a, act.Publish)]) == 2
    d.session.published(d.next(act.Publish).ticket, "1-1", False, d.now)
    d.pump()
    assert [a.id for a in d.pending if isinstance(a, act.Publish)] == ["p1", "p2"]
    assert not d.session.reading


def test_the_publish_windows_bytes_hold_the_reader_and_a_larger_publication_goes_alone() -> None:
    d = Driver(SessionConfig(publish_window=100, publish_window_bytes=3000))
    for n in range(3):
        d.frame(type="publish", id=f"p{n}", channel="c", data="x" * 1000)
    assert [a.id for a in d.pending if isinstance(a, act.Publish)] == ["p0", "p1"]
    assert not d.session.reading  # the third waits: its bytes would pass the window
    d.session.published(d.next(act.Publish).ticket, "1-1", False, d.now)
    d.pump()
    assert [a.id for a in d.pending if isinstance(a, act.Publish)] == ["p1", "p2"]
    d.session.published(d.next(act.Publish).ticket, "1-2", False, d.now)
    d.pump()
    assert d.session.reading
    d.frame(type="publish", id="big", channel="c", data="x" * 5000)  # larger than the window
    assert [a.id for a in d.pending if isinstance(a, act.Publish)] == ["p2"]
    d.session.published(d.next(act.Publish).ticket, "1-3", False, d.now)
    d.pump()
    assert [a.id for a in d.pending if isinstance(a, act.Publish)] == ["big"]  # alone
    assert not d.session.reading


def test_a_publication_over_the_identitys_quota_is_refused_and_starts_a_hold() -> None:
    d = Driver(publish_quota=Quota(1, wait=2.0))
    d.take()
    d.frame(type="publish", id="p1", channel="c", data=1)
    d.frame(type="publish", id="p2", channel="c", data=2)
    refused, ping = d.take()
    assert refused == {
        "type": "error",
        "code": "rate_limited",
        "message": "too many publications (or bytes of them) from you: retry later",
        "id": "p2",
        "retry_after": 2.0,
    }
    assert ping == {"type": "ping", "t": "hold-1"}
    d.frame(type="publish", id="p3", channel="c", data=3)  # in flight before the client read it
    assert d.take()[0]["id"] == "p3"


def test_publication_bytes_count_against_the_identitys_byte_quota() -> None:
    d = Driver(publish_bytes_quota=Quota(10, wait=3.0))
    d.take()
    d.frame(type="publish", id="p1", channel="c", data="12345678")  # "12345678" is 10 bytes
    assert d.next(act.Publish).id == "p1"
    d.frame(type="publish", id="p2", channel="c", data=1)
    refused = d.take()[0]
    assert (refused["code"], refused["id"], refused["retry_after"]) == ("rate_limited", "p2", 3.0)
    assert d.session.stats.drops["publish_quota"] == 1


def test_the_admission_gate_refuses_then_closes_a_client_that_ignores_it() -> None:
    d = Driver(SessionConfig(rate=1.0, burst=2, window=3, abuse_limit=100))
    d.take()
    for n in range(6):
        d.frame(type="message", id=f"m{n}", data=n)
        for action in list(d.pending):
            d.pending.remove(action)
            assert isinstance(action, act.HandleMessage)
            d.session.handled(
                action.ticket, messages.ack_result(action.id or "", action.data)[0], False, d.now
            )
            d.pump()
    codes = [a.get("code") for a in d.take() if a["type"] == "error"]
    assert codes == ["rate_limited"] * 3
    assert d.closed == (1008, "rate limit exceeded")


def test_a_client_the_server_holds_input_of_is_not_dropped_as_silent() -> None:
    d = Driver(SessionConfig(heartbeat=10.0))
    d.take()
    for _ in range(8):  # 80 s: its frames wait unread (the driver says it heard from it)
        d.now += 10.0
        d.session.heard(d.now)
        d.session.tick(d.now)
        assert not any(isinstance(a, act.Abort) for a in d.session.actions())
    d.now += 31.0  # then silent for over three heartbeats
    d.session.tick(d.now)
    assert any(isinstance(a, act.Abort) for a in d.session.actions())


def test_a_frame_over_the_size_limit_closes_with_1009_and_binary_is_refused() -> None:
    d = Driver(SessionConfig(max_message_chars=100))
    d.take()
    d.session.received(b"\x00\x01", d.now)
    d.pump()
    assert d.take()[0]["code"] == "binary_not_supported"
    d.frame(type="message", data="x" * 200)
    assert d.closed == (1009, "message too big")


def test_an_acked_message_runs_the_application_and_the_ack_comes_back_once_counted() -> None:
    d = Driver()
    d.take()
    d.frame(type="message", id="m1", data={"n": 1})
    handle = d.next(act.HandleMessage)
    assert (handle.id, handle.data) == ("m1", {"n": 1})
    assert not d.session.reading
    ack, _kept = messages.ack_result("m1", {"stored": True})
    d.session.handled(handle.ticket, ack, True, d.now)
    d.pump()
    assert d.take() == [{"type": "ack", "id": "m1", "ok": True, "data": {"stored": True}}]
    assert d.session.stats.dedup_hits["message"] == 1
    assert d.session.stats.acks["ok"] == 1
    assert d.session.reading


def test_the_ack_texts_keep_small_answers_and_drop_big_data_for_duplicates() -> None:
    small, kept = messages.ack_result("m1", "ok")
    assert small == kept
    _big, kept = messages.ack_result("m2", "x" * 1000)
    assert json.loads(kept) == {"type": "ack", "id": "m2", "ok": True, "duplicate": True}
    refused, kept = messages.ack_result("m3", "\ud800")
    assert json.loads(refused)["error"] == "the handler's result is not JSON"
    assert refused == kept
    assert json.loads(messages.ack_internal("m4"))["error"] == "internal error"
    unavailable = json.loads(messages.ack_unavailable("m5"))
    assert (unavailable["code"], unavailable["retry_after"]) == ("unavailable", 1.0)


def test_a_reply_from_the_application_goes_to_this_client() -> None:
    d = Driver()
    d.take()
    assert d.session.reply({"hi": 1})
    d.pump()
    assert d.take() == [{"type": "message", "data": {"hi": 1}}]
    assert not d.session.reply({1, 2})  # type: ignore[arg-type]
    d.pump()
    assert d.take()[0]["code"] == "bad_frame"


def test_subscribe_checks_rights_and_the_limit_then_answers_with_the_presence_it_asked_for() -> None:
    d = Driver(SessionConfig(max_subscriptions=1), grant=Grant("ann", 0.0, 1_000_900.0, ("news",)))
    d.take()
    d.frame(type="subscribe", channel="secret")
    assert d.take() == [
        {
            "type": "error",
            "code": "forbidden",
            "message": "you may not subscribe to 'secret'",
            "channel": "secret",
        }
    ]
    d.frame(type="subscribe", channel="news", since="5-1", presence=True)
    subscribe = d.next(act.Subscribe)
    assert (subscribe.since, subscribe.presence) == ((5, 1), True)
    member = '{"client":"c1","user":"ann","info":1}'
    d.session.subscribed(subscribe.ticket, "5-3", True, [member], "2-0", d.now)
    d.pump()
    assert d.take() == [
        {
            "type": "subscribed",
            "channel": "news",
            "offset": "5-3",
            "recovered": True,
            "presence": {"members": [{"client": "c1", "user": "ann", "info": 1}], "version": "2-0"},
        }
    ]
    d.frame(type="subscribe", channel="news.2")
    assert d.take()[0]["message"] == "at most 1 subscriptions per connection"
    d.frame(type="subscribe", channel="news")  # again: replaces the subscription
    assert [type(a) for a in d.pending] == [act.Unsubscribe, act.Subscribe]


def test_a_subscription_the_broker_cannot_make_is_refused_for_now_and_forgotten() -> None:
    d = Driver()
    d.take()
    d.frame(type="subscribe", channel="news")
    d.session.subscribe_failed(d.next(act.Subscribe).ticket, "redis is down", d.now)
    d.pump()
    assert d.take() == [
        {
            "type": "error",
            "code": "unavailable",
            "message": "cannot subscribe now: redis is down",
            "channel": "news",
            "retry_after": 1.0,
        }
    ]
    assert d.session.channels.subscriptions == {}


def test_a_subscription_over_the_channel_limits_is_forbidden_and_forgotten() -> None:
    d = Driver()
    d.take()
    d.frame(type="subscribe", channel="news")
    d.session.subscribe_forbidden(d.next(act.Subscribe).ticket, "you subscribe to as many (2)", d.now)
    d.pump()
    assert d.take() == [
        {"type": "error", "code": "forbidden", "message": "you subscribe to as many (2)", "channel": "news"}
    ]
    assert d.session.channels.subscriptions == {}
    assert [type(a) for a in d.pending] == [act.Unsubscribe]


def test_a_subscription_with_presence_counts_as_a_read() -> None:
    d = Driver(query_quota=Quota(1))
    d.take()
    d.frame(type="subscribe", channel="a", presence=True)
    d.next(act.Subscribe)
    d.frame(type="subscribe", channel="b")  # no snapshot: not a read
    d.next(act.Subscribe)
    d.frame(type="subscribe", channel="c", presence=True)
    refused = d.take()[0]
    assert (refused["code"], refused["channel"], refused["retry_after"]) == ("rate_limited", "c", 2.0)
    assert d.session.stats.drops["query_quota"] == 1


def test_presence_changes_count_against_the_identitys_presence_rate() -> None:
    d = Driver(presence_quota=Quota(1, wait=4.0))
    d.take()
    d.frame(type="presence_join", id="j1", channel="room")
    d.next(act.ShowInfo)
    d.frame(type="presence_leave", id="l1", channel="room")
    refused = d.take()[0]
    assert (refused["code"], refused["id"], refused["retry_after"]) == ("rate_limited", "l1", 4.0)
    assert refused["message"] == "too many presence changes: retry later"
    assert d.session.stats.drops["presence_quota"] == 1


def test_reads_need_the_right_to_subscribe_and_room_in_the_identitys_read_rate() -> None:
    d = Driver(query_quota=Quota(1), grant=Grant("ann", 0.0, 1_000_900.0, ("news",)))
    d.take()
    d.frame(type="history", id="h1", channel="secret")
    assert d.take()[0]["code"] == "forbidden"
    d.frame(type="history", id="h2", channel="news", limit=5000)
    read = d.next(act.ReadHistory)
    assert (read.limit, read.reverse, read.since) == (1000, False, None)  # clamped to the page limit
    page = HistoryPage([Publication("news", RawJSON('{"a":1}'), "1-1", "tick")], "1-1", True, False)
    d.session.history_read(read.ticket, page, d.now)
    d.pump()
    assert d.take()[0]["data"] == {
        "publications": [{"offset": "1-1", "event": "tick", "data": {"a": 1}}],
        "offset": "1-1",
        "recovered": True,
        "more": False,
    }
    d.frame(type="presence", id="p1", channel="news")
    refused = d.take()[0]
    assert (refused["code"], refused["id"], refused["retry_after"]) == ("rate_limited", "p1", 2.0)


def test_a_read_the_broker_cannot_do_is_unavailable_naming_the_frame() -> None:
    d = Driver()
    d.take()
    d.frame(type="presence", id="p1", channel="news")
    d.session.read_failed(d.next(act.ReadPresence).ticket, d.now)
    d.pump()
    assert d.take() == [
        {"type": "error", "code": "unavailable", "message": "cannot read presence now", "id": "p1"}
    ]
    assert d.session.reading


def test_a_join_shows_the_applications_info_bounded_then_enters_the_member() -> None:
    d = Driver(SessionConfig(max_presence_info_bytes=20), grant=Grant("ann", 0.0, 1_000_900.0))
    d.take()
    d.frame(type="presence_join", id="j1", channel="room", info={"name": "a"}, key="tab")
    show = d.next(act.ShowInfo)
    assert (show.channel, show.subject, show.info) == ("room", "ann", {"name": "a"})
    d.session.info_shown(show.ticket, {"name": "A"}, d.now)
    d.pump()
    join = d.next(act.Join)
    assert json.loads(join.member_json) == {"client": join.member, "user": "ann", "info": {"name": "A"}}
    d.session.joined(join.ticket, "ok", d.now)
    d.pump()
    assert d.take() == [{"type": "ack", "id": "j1", "ok": True, "data": {"client": join.member}}]
    assert d.session.presence.held == {("room", join.member)}
    d.frame(type="presence_join", id="j2", channel="room", info="x" * 30)
    d.session.info_shown(d.next(act.ShowInfo).ticket, "x" * 30, d.now)
    d.pump()
    assert d.take()[0]["message"] == "info is too large (at most 20 characters of JSON)"
    d.frame(type="presence_join", id="j3", channel="room")
    d.session.info_refused(d.next(act.ShowInfo).ticket, "no guests", d.now)
    d.pump()
    assert d.take() == [{"type": "error", "code": "forbidden", "message": "no guests", "id": "j3"}]


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [
        ("full", "forbidden", "the presence of 'room' is full"),
        ("identity", "forbidden", "you have as many members in 'room' as one client may"),
        ("unavailable", "unavailable", "cannot join presence now"),
    ],
)
def test_a_join_the_store_refuses_says_why(status: str, code: str, text: str) -> None:
    d = Driver()
    d.take()
    d.frame(type="presence_join", id="j1", channel="room")
    d.session.info_shown(d.next(act.ShowInfo).ticket, None, d.now)
    d.pump()
    d.session.joined(d.next(act.Join).ticket, status, d.now)
    d.pump()
    assert d.take() == [{"type": "error", "code": code, "message": text, "id": "j1"}]
    assert d.session.presence.held == set()


def test_a_connection_that_ends_releases_its_members_at_once_only_after_a_goodbye() -> None:
    for code, clean in ((1000, True), (1006, False)):
        d = Driver()
        d.frame(type="presence_join", channel="room", key="k")
        d.session.info_shown(d.next(act.ShowInfo).ticket, None, d.now)
        d.pump()
        join = d.next(act.Join)
        d.session.joined(join.ticket, "ok", d.now)
        d.pump()
        d.session.closed(code, d.now)
        d.pump()
        assert d.pending == [act.Release("room", join.member, "i1:s1", clean)]


def test_a_drain_closes_with_1001_once_the_pending_answer_went_out() -> None:
    d = Driver()
    d.take()
    d.frame(type="message", id="m1", data=1)
    d.session.drain("server shutting down; reconnect_window=5", d.now)
    d.pump()
    assert d.closed is None  # the ack goes first
    d.session.handled(d.next(act.HandleMessage).ticket, messages.ack_result("m1", 1)[0], False, d.now)
    d.pump()
    assert d.take()[0]["type"] == "ack"
    assert d.closed == (1001, "server shutting down; reconnect_window=5")


def test_bad_frames_are_refused_naming_their_id_and_the_connection_stays() -> None:
    d = Driver()
    d.take()
    d.session.received('{"type":"publish","id":"p1","channel":"a b","data":1}', d.now)
    d.session.received("not json", d.now)
    d.pump()
    assert [(a["code"], a.get("id")) for a in d.take()] == [("bad_frame", "p1"), ("bad_json", None)]
    assert d.closed is None
    assert d.session.stats.errors["bad_frame"] == 1


# ------------------------------------------------------------------------- the binary binding


def test_on_the_binary_binding_every_answer_is_messagepack_and_bytes_are_kept_tagged() -> None:
    d = Driver(binary=True)
    d.session.received(binary.pack({"type": "ping", "t": 1}), d.now)
    d.pump()
    assert [w["type"] for w in d.take()] == ["welcome", "pong"]
    d.session.received(binary.pack({"type": "publish", "id": "p-1", "channel": "c", "data": b"\x00"}), d.now)
    d.pump()
    publish = d.next(act.Publish)
    assert json.loads(publish.data_json) == {"$pyrt": "bytes", "base64": "AA=="}
    d.session.received('{"type":"ping","t":2}', d.now)  # text is still read as JSON
    d.pump()
    d.session.published(publish.ticket, "1-1", False, d.now)
    d.pump()
    assert d.take() == [
        {"type": "ack", "id": "p-1", "ok": True, "data": {"offset": "1-1"}},
        {"type": "pong", "t": 2},
    ]


def test_a_bad_binary_frame_is_refused_with_bad_frame_and_the_next_one_is_read() -> None:
    d = Driver(binary=True)
    d.take()
    for bad in (
        b"\xc1",
        binary.pack([1]),
        binary.pack({"type": "publish", "channel": "c", "data": float("nan")}),
    ):
        d.session.received(bad, d.now)
        d.pump()
    d.session.received(binary.pack({"type": "ping", "t": 3}), d.now)
    d.pump()
    answers = d.take()
    assert [(a["type"], a.get("code")) for a in answers] == [("error", "bad_frame")] * 3 + [("pong", None)]
    assert d.closed is None


def test_a_binary_frame_on_the_json_binding_names_the_binary_binding() -> None:
    d = Driver()
    d.take()
    d.session.received(binary.pack({"type": "ping"}), d.now)
    d.pump()
    (error,) = d.take()
    assert (error["code"], "pyrt.v1.msgpack" in error["message"]) == ("binary_not_supported", True)


def test_a_binary_frame_over_the_size_limit_closes_with_1009() -> None:
    d = Driver(SessionConfig(heartbeat=10.0, max_message_chars=100), binary=True)
    d.session.received(binary.pack({"type": "publish", "channel": "c", "data": b"x" * 200}), d.now)
    d.pump()
    assert d.closed is not None
    assert d.closed[0] == 1009


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_any_binary_frame_gets_an_error_or_an_answer_and_the_connection_stays_usable(
    frame: bytes,
) -> None:
    d = Driver(binary=True)
    d.take()
    d.session.received(frame, d.now)
    d.pump()
    answers = d.take()
    assert d.closed is None
    assert all(
        a["type"] != "error" or a["code"] in ("bad_frame", "unknown_type", "forbidden") for a in answers
    )
    if not d.session.reading:  # a valid frame waiting for its outcome (a message, a read)
        return
    d.session.received(binary.pack({"type": "ping", "t": 9}), d.now)
    d.pump()
    assert {"type": "pong", "t": 9} in d.take()
