"""The WebSocket relay: which frame goes to the server, to one link, or to every link."""

from __future__ import annotations

import json
from typing import Any

from pyrt.share.relay import CloseLink, OpenLink, RelayAction, ToLink, ToServer
from pyrt.share.ws_relay import WsRelay

WELCOME = '{"type":"welcome","session":"s1","server":"x","heartbeat":25}'


def j(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def to(actions: list[RelayAction], link: str) -> list[dict[str, Any]]:
    """What ``link`` gets, in order (a link's first frame comes with its opening)."""
    frames = [
        a.item if isinstance(a, ToLink) else a.first
        for a in actions
        if isinstance(a, ToLink | OpenLink) and a.link == link
    ]
    return [json.loads(f) for f in frames if isinstance(f, str)]


def opened(actions: list[RelayAction]) -> list[str]:
    return [a.link for a in actions if isinstance(a, OpenLink)]


def sent(actions: list[RelayAction]) -> list[dict[str, Any]]:
    return [json.loads(a.frame) for a in actions if isinstance(a, ToServer)]


def open_relay(*links: str) -> WsRelay:
    relay = WsRelay()
    for n, link in enumerate(links):
        relay.link_requested(link, f"tab{n}")
    relay.server_frame(WELCOME)
    return relay


def subscribed(channel: str, offset: str | None, recovered: bool = True) -> str:
    return j({"type": "subscribed", "channel": channel, "offset": offset, "recovered": recovered})


def publication(channel: str, offset: str, data: Any = None) -> str:
    return j({"type": "publication", "channel": channel, "offset": offset, "data": data})


def test_links_wait_for_the_welcome_and_each_gets_one() -> None:
    relay = WsRelay()
    assert relay.link_requested("a", "tab1") == []
    actions, own = relay.server_frame(WELCOME)
    assert own  # the connection's own frame: its engine gets it too
    assert opened(actions) == ["a"]
    assert to(actions, "a") == [{"type": "welcome", "session": "s1", "server": "shared"}]
    later = relay.link_requested("b", "tab2")
    assert opened(later) == ["b"]
    assert relay.links == 2
    assert relay.participants() == 2


def test_a_links_ping_is_answered_by_the_relay_not_the_server() -> None:
    relay = open_relay("a")
    actions = relay.link_sent("a", '{"type":"ping","t":7}')
    assert sent(actions) == []
    assert to(actions, "a") == [{"type": "pong", "t": 7}]
    assert relay.server_frame('{"type":"ping","t":1}') == ([], True)
    assert relay.server_frame('{"type":"pong","t":3}') == ([], True)


def test_an_ack_or_error_goes_back_to_the_link_that_sent_the_message() -> None:
    relay = open_relay("a", "b")
    assert sent(relay.link_sent("b", '{"type":"message","id":"x-1","data":1}')) == [
        {"type": "message", "id": "x-1", "data": 1}
    ]
    relay.link_sent("a", '{"type":"publish","id":"y-1","channel":"c","data":2}')
    ack, own = relay.server_frame('{"type":"ack","id":"x-1","ok":true,"data":1}')
    assert not own
    assert [a.link for a in ack if isinstance(a, ToLink)] == ["b"]
    error, _ = relay.server_frame('{"type":"error","code":"forbidden","message":"no","id":"y-1"}')
    assert [a.link for a in error if isinstance(a, ToLink)] == ["a"]
    again, own = relay.server_frame('{"type":"ack","id":"x-1","ok":true}')  # answered already
    assert again == []  # no link sent it (now): the connection's own, such as a token refresh
    assert own


def test_application_messages_and_unknown_frames_go_to_every_link() -> None:
    relay = open_relay("a", "b")
    for frame in ('{"type":"message","data":"hi"}', '{"type":"presence","channel":"c"}', "not json"):
        actions, own = relay.server_frame(frame)
        assert not own
        assert {a.link for a in actions if isinstance(a, ToLink)} == {"a", "b"}


def test_the_first_subscriber_subscribes_and_others_share_the_subscription() -> None:
    relay = open_relay("a", "b", "c")
    first = relay.link_sent("a", '{"type":"subscribe","channel":"news","since":null}')
    assert sent(first) == [{"type": "subscribe", "channel": "news", "since": None}]
    assert relay.link_sent("b", '{"type":"subscribe","channel":"news","since":null}') == []  # waits too
    answer, _ = relay.server_frame(subscribed("news", "1-5"))
    assert {a.link for a in answer if isinstance(a, ToLink)} == {"a", "b"}
    late = relay.link_sent("c", '{"type":"subscribe","channel":"news","since":null}')
    assert sent(late) == []
    assert to(late, "c")[0]["offset"] == "1-5"
    pub, _ = relay.server_frame(publication("news", "1-6"))
    assert {a.link for a in pub if isinstance(a, ToLink)} == {"a", "b", "c"}
    other, _ = relay.server_frame(publication("sports", "1-1"))
    assert other == []


def test_a_link_behind_the_shared_subscription_gets_a_replay_from_its_offset() -> None:
    relay = open_relay("a", "b")
    relay.link_sent("a", '{"type":"subscribe","channel":"news","since":null}')
    relay.server_frame(subscribed("news", "1-5"))
    relay.server_frame(publication("news", "1-6"))
    resub = relay.link_sent("b", '{"type":"subscribe","channel":"news","since":"1-2"}')
    assert sent(resub) == [{"type": "subscribe", "channel": "news", "since": "1-2"}]
    live, _ = relay.server_frame(publication("news", "1-7"))  # before the answer: not to b
    assert {a.link for a in live if isinstance(a, ToLink)} == {"a"}
    answer, _ = relay.server_frame(subscribed("news", "1-7"))
    assert [a.link for a in answer if isinstance(a, ToLink)] == ["b"]
    replay, _ = relay.server_frame(publication("news", "1-3"))  # a drops it by its own offset
    assert {a.link for a in replay if isinstance(a, ToLink)} == {"a", "b"}


def test_a_link_ahead_of_the_shared_subscription_is_answered_at_once() -> None:
    relay = open_relay("a", "b")
    relay.link_sent("a", '{"type":"subscribe","channel":"news","since":"1-2"}')
    relay.server_frame(subscribed("news", "1-4"))
    ahead = relay.link_sent("b", '{"type":"subscribe","channel":"news","since":"1-9"}')
    assert sent(ahead) == []
    assert to(ahead, "b")[0]["type"] == "subscribed"


def test_the_server_unsubscribes_when_the_last_link_leaves() -> None:
    relay = open_relay("a", "b")
    relay.link_sent("a", '{"type":"subscribe","channel":"news","since":null}')
    relay.link_sent("b", '{"type":"subscribe","channel":"news","since":null}')
    relay.server_frame(subscribed("news", "1-1"))
    first = relay.link_sent("a", '{"type":"unsubscribe","channel":"news"}')
    assert sent(first) == []
    assert to(first, "a") == [{"type": "unsubscribed", "channel": "news"}]
    assert sent(relay.link_closed("b")) == [{"type": "unsubscribe", "channel": "news"}]
    assert relay.server_frame('{"type":"unsubscribed","channel":"news"}') == ([], False)
    again = relay.link_sent("a", '{"type":"subscribe","channel":"news","since":null}')
    assert sent(again) == [{"type": "subscribe", "channel": "news", "since": None}]


def test_a_subscribe_after_an_unsubscribe_in_flight_waits_for_its_own_answer() -> None:
    relay = open_relay("a")
    relay.link_sent("a", '{"type":"subscribe","channel":"news","since":null}')
    relay.server_frame(subscribed("news", "1-1"))
    relay.link_sent("a", '{"type":"unsubscribe","channel":"news"}')
    resub = relay.link_sent("a", '{"type":"subscribe","channel":"news","since":"1-1"}')
    assert sent(resub) == [{"type": "subscribe", "channel": "news", "since": "1-1"}]
    relay.server_frame('{"type":"unsubscribed","channel":"news"}')
    answer, _ = relay.server_frame(subscribed("news", "1-1"))
    assert [a.link for a in answer if isinstance(a, ToLink)] == ["a"]


def test_losing_the_server_closes_every_link_and_forgets_the_routes() -> None:
    relay = open_relay("a", "b")
    relay.link_sent("a", '{"type":"message","id":"x-1","data":1}')
    closed = relay.lost()
    lost = "the shared connection was lost"
    assert closed == [CloseLink("a", 1006, lost), CloseLink("b", 1006, lost)]
    assert relay.link_requested("a", "tab0") == []  # waits for the connection again
    assert relay.link_sent("b", "{}") == []  # a closed link's frames go nowhere
    actions, _ = relay.server_frame(WELCOME)
    assert opened(actions) == ["a"]


def test_a_closed_link_leaves_its_channels_and_ids() -> None:
    relay = open_relay("a", "b")
    relay.link_sent("a", '{"type":"message","id":"x-1","data":1}')
    relay.link_sent("a", '{"type":"subscribe","channel":"news","since":null}')
    assert sent(relay.link_closed("a")) == [{"type": "unsubscribe", "channel": "news"}]
    ack, own = relay.server_frame('{"type":"ack","id":"x-1","ok":true}')
    assert ack == []  # its link is gone: nobody else gets it
    assert own
    assert relay.participants() == 1


def test_in_raw_mode_nothing_is_parsed() -> None:
    relay = WsRelay(parse=False)
    relay.link_requested("a", "tab")
    assert opened(relay.server_opened()) == ["a"]
    assert relay.link_sent("a", '{"type":"ping"}') == [ToServer('{"type":"ping"}')]
    actions, own = relay.server_frame(b"\x00")
    assert not own
    assert actions == [ToLink("a", b"\x00")]


def member(client: str) -> dict[str, Any]:
    return {"client": client, "user": None, "info": {"name": client}}


def test_presence_is_asked_for_once_and_a_later_link_gets_the_members_at_once() -> None:
    relay = open_relay("a", "b", "c")
    assert sent(relay.link_sent("a", '{"type":"subscribe","channel":"room","since":null}')) == [
        {"type": "subscribe", "channel": "room", "since": None}
    ]
    relay.server_frame(subscribed("room", "1-1"))
    # b wants the presence: a re-subscription from the latest offset asks for it
    asked = sent(relay.link_sent("b", '{"type":"subscribe","channel":"room","since":null,"presence":true}'))
    assert asked == [{"type": "subscribe", "channel": "room", "since": "1-1", "presence": True}]
    answer = j(
        {
            "type": "subscribed",
            "channel": "room",
            "offset": "1-1",
            "recovered": True,
            "presence": {"members": [member("m1")], "version": "1-5"},
        }
    )
    out, _ = relay.server_frame(answer)
    assert [a.link for a in out if isinstance(a, ToLink)] == ["b"]
    diff = j(
        {"type": "presence_diff", "channel": "room", "version": "1-6", "joins": [member("m2")], "leaves": []}
    )
    out, _ = relay.server_frame(diff)
    assert [a.link for a in out if isinstance(a, ToLink)] == ["b"]  # a did not ask for the presence
    # c asks later: answered by the relay, with the members as of the last diff
    out = relay.link_sent("c", '{"type":"subscribe","channel":"room","since":null,"presence":true}')
    assert sent(out) == []
    (answered,) = to(out, "c")
    assert answered["presence"]["version"] == "1-6"
    assert sorted(m["client"] for m in answered["presence"]["members"]) == ["m1", "m2"]


def test_a_closed_link_leaves_the_presence_it_joined() -> None:
    relay = open_relay("a", "b")
    relay.link_sent("a", '{"type":"presence_join","id":"a-1","channel":"room","info":null,"key":"ka"}')
    relay.link_sent("b", '{"type":"presence_join","id":"b-1","channel":"room","info":null,"key":"kb"}')
    relay.link_sent("b", '{"type":"presence_join","id":"b-2","channel":"hall","info":null,"key":"kb"}')
    relay.link_sent("b", '{"type":"presence_leave","id":"b-3","channel":"hall","key":"kb"}')
    assert sent(relay.link_closed("b")) == [{"type": "presence_leave", "channel": "room", "key": "kb"}]
    assert sent(relay.link_closed("a")) == [{"type": "presence_leave", "channel": "room", "key": "ka"}]


def test_a_refused_subscription_answers_its_links_only() -> None:
    relay = open_relay("a", "b")
    relay.link_sent("a", '{"type":"subscribe","channel":"secret","since":null}')
    refusal = j({"type": "error", "code": "forbidden", "message": "no", "channel": "secret"})
    out, own = relay.server_frame(refusal)
    assert not own
    assert [a.link for a in out if isinstance(a, ToLink)] == ["a"]
    # asked again later: a new subscribe goes out (the refused one is not waited for)
    assert sent(relay.link_sent("a", '{"type":"subscribe","channel":"secret","since":null}')) == [
        {"type": "subscribe", "channel": "secret", "since": None}
    ]


def test_a_batched_message_is_routed_frame_by_frame() -> None:
    relay = WsRelay()
    relay.link_requested("a", "tab1")
    relay.link_requested("b", "tab2")
    actions, own = relay.server_message(WELCOME + "\n" + '{"type":"ping","t":1}')
    assert own == [WELCOME, '{"type":"ping","t":1}']  # each to the connection's engine, in order
    assert opened(actions) == ["a", "b"]
    relay.link_sent("a", j({"type": "subscribe", "channel": "c", "since": None}))
    relay.link_sent("b", '{"type":"message","id":"b-1","data":1}')
    batch = "\n".join(
        [subscribed("c", "0-0"), publication("c", "1-1", "x"), '{"type":"ack","id":"b-1","ok":true}', ""]
    )
    actions, own = relay.server_message(batch)
    assert own == []
    assert [f["type"] for f in to(actions, "a")] == ["subscribed", "publication"]
    assert to(actions, "b") == [{"type": "ack", "id": "b-1", "ok": True}]


def test_a_message_with_line_breaks_that_is_not_a_batch_stays_whole() -> None:
    relay = open_relay("a")
    pretty = '{\n  "type": "message",\n  "data": 1\n}'
    actions, own = relay.server_message(pretty)
    assert own == []
    assert actions == [ToLink("a", pretty)]
    raw = WsRelay(parse=False)
    raw.link_requested("a", "tab1")
    raw.server_opened()
    assert raw.server_message("one\ntwo") == ([ToLink("a", "one\ntwo")], [])


def test_each_link_is_welcomed_with_the_servers_limits() -> None:
    """A client on a link paces itself under the server's limits and fails a frame too large for
    the server on its own, instead of getting the shared connection closed."""
    relay = WsRelay()
    relay.link_requested("a", "tab1")
    limits = {"rate": 200, "burst": 400, "window": 1000, "max_bytes": 65536}
    actions, _ = relay.server_frame(j({"type": "welcome", "session": "s1", "limits": limits}))
    welcome = to(actions, "a")[0]
    assert welcome["limits"] == limits
    assert welcome["server"] == "shared"
    relay.lost()
    relay.link_requested("b", "tab2")
    actions, _ = relay.server_frame(WELCOME)  # a server that advertises nothing
    assert "limits" not in to(actions, "b")[0]


def test_a_pong_answers_in_turn_behind_what_the_link_sent_before() -> None:
    relay = open_relay("a")
    (pong,) = relay.link_sent("a", '{"type":"ping","t":-1}')  # a probe of the link's pacer
    assert isinstance(pong, ToLink)
    assert pong.in_turn  # the hub gives it once the link's earlier frames are on the connection
    (message,) = relay.link_sent("a", '{"type":"message","data":1}')
    assert message == ToServer('{"type":"message","data":1}')
    assert relay.link_sent("a", b"\x00") == [ToServer(b"\x00")]
