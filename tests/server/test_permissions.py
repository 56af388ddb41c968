"""Who may do what in which channel: token capabilities and the channel policy, as functions and
against a real server (WebSocket, SSE and ``POST /publish`` alike)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import httpx
import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import _sign, make_token, verify_token
from pyrt.server.brokers.memory import MemoryBroker
from pyrt.server.permissions import MAX_CAPS, Cap, caps_allow, parse_caps
from pyrt.server.runtime import Runtime, default_channel_policy
from pyrt.server.settings import Settings
from tests import REPO
from tests.server.wsclient import Client, run

SECRET = "caps-secret"
CHAT = [{"channels": ["chat", "room:*"], "allow": ["subscribe", "publish", "join"]}]


#: docs/protocol.md (Authorization) shows this table: pattern, channel, matches.
PATTERN_EXAMPLES = [
    ("news", "news", True),
    ("news", "news2", False),
    ("room:*", "room:1", True),
    ("room:*", "room:lobby", True),
    ("room:*", "room:", False),  # "*" is one segment, never an empty one
    ("room:*", "room:1:admin", False),  # ... and never more than one
    ("room:*", "room", False),
    ("room:*:chat", "room:1:chat", True),
    ("room:*:chat", "room:1:admin", False),
    ("user-*", "user-7", True),
    ("user-*", "user-", False),
    ("user-*", "user-7:x", False),
    ("room:**", "room:1", True),
    ("room:**", "room:1:admin", True),
    ("room:**", "room", False),
    ("room:**", "room:", False),
    ("*", "chat", True),
    ("*", "room:1", False),
    ("**", "room:1:admin", True),
]


@pytest.mark.parametrize(("pattern", "channel", "matches"), PATTERN_EXAMPLES)
def test_patterns_are_segment_aware(pattern: str, channel: str, matches: bool) -> None:
    (cap,) = parse_caps([{"channels": [pattern], "allow": ["subscribe"]}])
    assert cap == Cap((pattern,), frozenset({"subscribe"}))
    assert cap.matches(channel) is matches


def test_the_pattern_table_is_the_documented_one() -> None:
    docs = (REPO / "docs" / "protocol.md").read_text()
    for pattern, channel, matches in PATTERN_EXAMPLES:
        assert f"| `{pattern}` | `{channel}` | {'yes' if matches else 'no'} |" in docs, (pattern, channel)


def test_an_action_needs_a_cap_naming_both_channel_and_action() -> None:
    caps = parse_caps([*CHAT, {"channels": ["news"], "allow": ["subscribe"]}])
    assert caps_allow(caps, "chat", "publish")
    assert caps_allow(caps, "room:7", "join")
    assert caps_allow(caps, "news", "subscribe")
    assert not caps_allow(caps, "news", "publish")
    assert not caps_allow(caps, "other", "subscribe")
    assert not caps_allow((), "chat", "subscribe")  # "caps": [] allows nothing
    assert caps_allow(None, "anything", "publish")  # no caps claim: the policy decides


@pytest.mark.parametrize(
    "bad",
    [
        {"channels": ["chat"], "allow": ["subscribe"]},  # not a list
        [{"channels": [], "allow": ["subscribe"]}],
        [{"channels": ["bad name"], "allow": ["subscribe"]}],
        [{"channels": ["a*b"], "allow": ["subscribe"]}],
        [{"channels": ["**:x"], "allow": ["subscribe"]}],  # "**" only last
        [{"channels": ["room:*x"], "allow": ["subscribe"]}],
        [{"channels": ["chat"], "allow": ["admin"]}],
        [{"channels": ["chat"], "allow": []}],
        [{"channels": ["chat"]}],
        ["chat"],
        [{"channels": ["c"], "allow": ["publish"]}] * (MAX_CAPS + 1),
    ],
)
def test_malformed_caps_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"caps|cap |pattern|allow"):
        parse_caps(bad)


def test_a_token_with_malformed_caps_is_no_token_at_all() -> None:
    good = make_token(SECRET, "alice", caps=CHAT)
    claims = verify_token(SECRET, good)
    assert claims is not None
    assert claims.caps == parse_caps(CHAT)
    with pytest.raises(ValueError, match="allow must list actions"):
        make_token(SECRET, "alice", caps=[{"channels": ["chat"], "allow": ["root"]}])
    plain = verify_token(SECRET, make_token(SECRET, "bob"))
    assert plain is not None
    assert plain.caps is None
    # correctly signed, but "caps" is not a list of capabilities: refused, never "anything goes"
    payload = base64.urlsafe_b64encode(b'{"sub":"eve","exp":9999999999,"caps":"all"}').rstrip(b"=").decode()
    assert verify_token(SECRET, payload + "." + _sign(SECRET, payload)) is None


def test_the_token_and_the_policy_must_both_allow() -> None:
    runtime = Runtime(Settings(), MemoryBroker(), handler=lambda message: message.data)  # type: ignore[arg-type,return-value]
    caps = verify_token(SECRET, make_token(SECRET, "alice", caps=[{"channels": ["*"], "allow": ["publish"]}]))
    plain = verify_token(SECRET, make_token(SECRET, "alice"))
    assert runtime.allowed("chat", caps, "publish")
    assert not runtime.allowed("_server", caps, "publish")  # the policy keeps "_" channels
    assert not runtime.allowed("chat", caps, "subscribe")  # the token does not list it
    assert runtime.allowed("chat", plain, "subscribe")
    assert runtime.allowed("chat", None, "join")
    assert not default_channel_policy("_x", "alice", "join")


@pytest.fixture
def secured(pyrt_start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return pyrt_start_server(env={"PYRT_TOKEN_SECRET": SECRET})


def test_a_real_server_enforces_the_caps_on_every_way_in(secured: ServerProcess) -> None:
    tag = uuid.uuid4().hex[:8]
    token = make_token(
        SECRET,
        "alice",
        caps=[
            {"channels": [f"room:{tag}:*"], "allow": ["subscribe", "publish"]},
            {"channels": [f"news{tag}"], "allow": ["subscribe"]},
        ],
    )
    auth = {"Authorization": f"Bearer {token}"}

    async def scenario() -> None:
        client = await Client.connect(secured.ws_url, subprotocols=["pyrt.v1", f"bearer.{token}"])
        await client.send({"type": "subscribe", "channel": f"room:{tag}:1"})
        await client.expect("subscribed", channel=f"room:{tag}:1")
        await client.send({"type": "subscribe", "channel": f"other{tag}"})
        refused = await client.expect("error")
        assert (refused["code"], refused["channel"]) == ("forbidden", f"other{tag}")
        await client.send({"type": "publish", "id": "p1", "channel": f"news{tag}", "data": 1})
        assert (await client.expect("error"))["code"] == "forbidden"
        await client.send({"type": "publish", "id": "p2", "channel": f"room:{tag}:1", "data": 2})
        assert (await client.expect("ack", id="p2"))["ok"] is True
        await client.close()

    run(scenario())
    publish = secured.url + "/publish"
    assert httpx.post(publish, json={"channel": f"news{tag}", "data": 1}, headers=auth).status_code == 403
    assert httpx.post(publish, json={"channel": f"room:{tag}:2", "data": 1}, headers=auth).status_code == 200
    sse = secured.url + "/sse"
    assert httpx.get(sse, params={"channel": f"other{tag}"}, headers=auth).status_code == 204
