"""The presence store's rules (memory), driven directly: diffs, versions, bounds, expiry and grace."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from pyrt.pytest_plugin.proxy import ChaosProxy
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.presence import MemoryPresence, PresenceStore, member_id
from pyrt.server.settings import Settings
from pyrt.wire.offsets import offset_key
from tests.faults.scenario import emit
from tests.server.wsclient import Client

Diff = tuple[str, str, list[Any], list[Any]]


T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


def member(name: str) -> str:
    return json.dumps({"client": name, "user": None, "info": {"name": name}})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def store(clock: Clock | None = None, **kwargs: Any) -> tuple[MemoryPresence, list[Diff]]:
    diffs: list[Diff] = []
    presence = MemoryPresence(clock=clock or Clock(), clock_ms=lambda: 7000, **kwargs)
    presence.start(
        lambda c, v, j, lv: diffs.append(
            (c, v, [json.loads(x)["client"] for x in j], [json.loads(x)["client"] for x in lv])
        )
    )
    return presence, diffs


async def join(
    presence: PresenceStore,
    name: str,
    owner: str = "i:s1",
    identity: str = "ip:1",
    channel: str = "room",
    **limits: int,
) -> str:
    limits.setdefault("max_members", 1000)
    limits.setdefault("max_per_identity", 16)
    result = await presence.join(channel, name, member(name), identity, owner, **limits)
    return result.status


def test_joins_updates_and_leaves_are_versioned_diffs() -> None:
    async def scenario() -> None:
        presence, diffs = store()
        assert await join(presence, "a") == "ok"
        assert await join(presence, "a") == "ok"  # the same again: no diff
        await presence.join(
            "room",
            "a",
            member("a").replace("}}", ',"away":true}}'),
            "ip:1",
            "i:s2",
            max_members=9,
            max_per_identity=9,
        )
        assert await join(presence, "b", owner="i:s3") == "ok"
        await presence.leave("room", "a")
        snapshot = await presence.members("room")
        assert [json.loads(m)["client"] for m in snapshot.members] == ["b"]
        assert diffs == [
            ("room", "7000-1", ["a"], []),
            ("room", "7000-2", ["a"], []),
            ("room", "7000-3", ["b"], []),
            ("room", "7000-4", [], ["a"]),
        ]
        assert snapshot.version == "7000-4"
        assert await presence.members("empty") == type(snapshot)([], "0")

    run(scenario)


def test_a_channel_that_empties_starts_a_later_life() -> None:
    async def scenario() -> None:
        lives = iter([7000, 7000])
        presence = MemoryPresence(clock=Clock(), clock_ms=lambda: next(lives))
        versions: list[str] = []
        presence.start(lambda c, v, j, lv: versions.append(v))
        await join(presence, "a")
        await presence.leave("room", "a")
        await join(presence, "a")
        assert versions == ["7000-1", "7000-2", "7001-1"]  # each newer than the one before
        assert sorted(versions, key=lambda v: offset_key(v) or (0, 0)) == versions

    run(scenario)


def test_a_channel_an_identity_and_the_store_have_their_bounds() -> None:
    async def scenario() -> None:
        presence, _ = store(max_total=5, max_per_identity_total=99)  # (its own test below)
        assert await join(presence, "a", max_members=2) == "ok"
        assert await join(presence, "b", identity="ip:2", max_members=2) == "ok"
        assert await join(presence, "c", identity="ip:3", max_members=2) == "full"
        assert await join(presence, "a", max_members=2) == "ok"  # already there: an update is fine
        assert await join(presence, "d", max_members=9, max_per_identity=1) == "identity"
        assert await join(presence, "e", identity="ip:5", max_members=9, max_per_identity=1) == "ok"
        for n in range(2):
            await presence.join(f"other{n}", "x", member("x"), "ip:9", "o", max_members=9, max_per_identity=9)
        assert presence.total == 5
        assert await join(presence, "f", identity="ip:6") == "total"

    run(scenario)


def test_one_identity_holds_at_most_a_sixteenth_of_the_store() -> None:
    async def scenario() -> None:
        presence, _ = store(max_total=64)
        assert presence.max_per_identity_total == 4
        for n in range(4):  # in four channels: each channel's own bound is not what stops it
            assert await join(presence, f"m{n}", channel=f"room{n}") == "ok"
        assert await join(presence, "m4", channel="room4") == "identity_total"
        assert await join(presence, "m0", channel="room0") == "ok"  # updating its own is fine
        assert await join(presence, "other", identity="ip:2", channel="room4") == "ok"
        await presence.leave("room1", "m1")
        assert await join(presence, "m4", channel="room4") == "ok"  # a leave frees its place
        assert presence.total == 5

    run(scenario)


def test_a_clean_end_leaves_at_once_a_lost_one_after_the_grace_unless_taken_over() -> None:
    async def scenario() -> None:
        presence, diffs = store(grace=0.05)
        await join(presence, "a", owner="i:s1")
        await join(presence, "b", owner="i:s2")
        await join(presence, "c", owner="i:s3")
        presence.release("room", "a", "i:s1", clean=True)
        presence.release("room", "b", "i:s2", clean=False)
        presence.release("room", "c", "i:s3", clean=False)
        await asyncio.sleep(0.01)
        assert diffs[-1][3] == ["a"]
        await join(presence, "c", owner="i:s4")  # c came back on a new connection
        await asyncio.sleep(0.15)
        assert [d[3] for d in diffs if d[3]] == [["a"], ["b"]]
        assert [json.loads(m)["client"] for m in (await presence.members("room")).members] == ["c"]
        await presence.close()

    run(scenario)


def test_entries_of_an_instance_that_stopped_refreshing_expire_after_the_ttl() -> None:
    async def scenario() -> None:
        clock = Clock()
        presence, diffs = store(clock, ttl=30.0)
        await join(presence, "mine", owner="i:s1")
        await presence.join(
            "room", "theirs", member("theirs"), "ip:2", "dead:s9", max_members=9, max_per_identity=9
        )
        presence.local.pop(("room", "theirs"))  # as if another instance had joined it, then died
        clock.now += 20
        await presence.maintain(["room"])  # refreshes "mine" only
        clock.now += 15
        await presence.maintain(["room"])
        assert [json.loads(m)["client"] for m in (await presence.members("room")).members] == ["mine"]
        assert diffs[-1][3] == ["theirs"]

    run(scenario)


def test_handing_over_makes_this_instances_members_expire_after_the_grace() -> None:
    async def scenario() -> None:
        clock = Clock()
        presence, diffs = store(clock, ttl=30.0, grace=5.0)
        await join(presence, "a")
        await presence.hand_over()
        assert presence.local == {}
        clock.now += 4
        assert len((await presence.members("room")).members) == 1
        clock.now += 2
        assert (await presence.members("room")).members == []
        assert diffs[-1][3] == ["a"]

    run(scenario)


def test_a_reconnect_window_longer_than_the_grace_keeps_members_for_the_window() -> None:
    # A server that drains many clients spreads their reconnects over a window: members must not
    # be seen to leave (and join again) only because their client's turn came after the grace.
    async def scenario() -> None:
        clock = Clock()
        presence, diffs = store(clock, ttl=30.0, grace=5.0)
        await join(presence, "a")
        await presence.hand_over(window=12.0)
        clock.now += 11
        assert len((await presence.members("room")).members) == 1
        clock.now += 2
        assert (await presence.members("room")).members == []
        assert diffs[-1][3] == ["a"]

    run(scenario)


def test_a_failing_listener_is_logged_and_the_store_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        presence = MemoryPresence(clock=Clock())

        def broken(*args: object) -> None:
            raise RuntimeError("boom")

        presence.start(broken)
        assert await join(presence, "a") == "ok"

    run(scenario)
    assert "presence diff" in caplog.text


def test_member_ids_are_the_clients_own() -> None:
    assert member_id("sub:alice", "k") != member_id("sub:mallory", "k")


# --------------------------------------------------------------- against a real serve.py


async def _watch(server: ServerProcess, channel: str) -> Client:
    watcher = await Client.connect(server.ws_url)
    await watcher.send({"type": "subscribe", "channel": channel, "presence": True})
    await watcher.expect("subscribed")
    return watcher


async def _join(server: ServerProcess, channel: str, info: Any, key: str = "", **kwargs: Any) -> Client:
    client = await Client.connect(server.ws_url, **kwargs)
    await client.send({"type": "presence_join", "id": "j", "channel": channel, "info": info, "key": key})
    await client.expect("ack", id="j")
    return client


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_goodbye_leaves_at_once_and_a_lost_connection_after_the_grace(pyrt_server: ServerProcess) -> None:
    channel = _unique("grace")
    grace = Settings().presence_grace

    async def scenario() -> tuple[float, float]:
        watcher = await _watch(pyrt_server, channel)
        polite = await _join(pyrt_server, channel, "polite")
        lost = await _join(pyrt_server, channel, "lost")
        joined: list[str] = []
        while len(joined) < 2:  # one diff, or two when the joins fell in different ticks
            joined += [m["info"] for m in (await watcher.expect("presence_diff"))["joins"]]
        assert sorted(joined) == ["lost", "polite"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        await polite.close()  # a close frame: a goodbye
        diff = await watcher.expect("presence_diff")
        assert [m["info"] for m in diff["leaves"]] == ["polite"]
        goodbye = loop.time() - started
        transport = lost.ws.transport
        started = loop.time()
        transport.abort()  # no close frame: the pyrt_server cannot tell it from a network failure
        diff = await watcher.expect("presence_diff", timeout=grace + 10)
        assert [m["info"] for m in diff["leaves"]] == ["lost"]
        return goodbye, loop.time() - started

    goodbye, lost = run(scenario)
    emit("presence.leave", goodbye_s=goodbye, lost_s=lost, grace_s=grace)
    assert goodbye < grace  # at once, not after the grace
    assert lost >= grace - 0.1  # never before the grace: a client that comes back is not seen to leave


def test_a_client_that_comes_back_within_the_grace_is_never_seen_to_leave(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # The grace is scaled down from 5 s: "nobody is seen to leave" can only be checked by letting
    # the grace pass, and the store's rule itself is tested on a short grace above.
    grace = 0.5
    server = pyrt_start_server("--presence-grace", str(grace))
    channel = _unique("back")

    async def scenario() -> None:
        watcher = await _watch(server, channel)
        first = await _join(server, channel, "me", key="tab-1")
        await watcher.expect("presence_diff")
        first.ws.transport.abort()
        again = await _join(server, channel, "me", key="tab-1")  # same key, new connection
        await again.send({"type": "presence", "id": "p", "channel": channel})
        members = (await again.expect("ack", id="p"))["data"]["members"]
        assert [m["info"] for m in members] == ["me"]
        await asyncio.sleep(2 * grace)  # past the grace of the lost connection
        await watcher.send({"type": "ping", "t": "after"})
        await watcher.expect("pong", t="after")
        assert [f for f in watcher.frames if f["type"] == "presence_diff"] == []
        await again.close()

    run(scenario)


def test_a_killed_client_process_leaves_within_the_grace(pyrt_server: ServerProcess) -> None:
    channel = _unique("kill9")
    grace = Settings().presence_grace
    script = (
        "import asyncio, sys\n"
        "from pyrt import WebSocketClient\n"
        "async def main():\n"
        f"    client = WebSocketClient({pyrt_server.ws_url + '/ws'!r})\n"
        f"    await client.connect().join({channel!r}, 'doomed')\n"
        "    print('joined', flush=True)\n"
        "    await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )

    async def scenario() -> float:
        watcher = await _watch(pyrt_server, channel)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
            assert line.strip() == "joined"
            await watcher.expect("presence_diff")
            loop = asyncio.get_running_loop()
            killed = loop.time()
            proc.kill()  # SIGKILL: the kernel closes its socket, no close frame is ever sent
            diff = await watcher.expect("presence_diff", timeout=grace + 10)
            assert [m["info"] for m in diff["leaves"]] == ["doomed"]
            return loop.time() - killed
        finally:
            proc.kill()
            proc.wait(10)

    took = run(scenario)
    emit("presence.kill9", leave_s=took, grace_s=grace)
    assert took <= grace + 2.0  # the bound, plus margin for a busy machine


def test_a_half_open_connection_leaves_once_the_heartbeat_gives_up_on_it(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    # --heartbeat is scaled down from 20 s (dropped after 3 silent intervals) so that the
    # half-open connection is found within the test; the presence grace is the default.
    quick = pyrt_start_server("--heartbeat", "0.5")
    channel = _unique("halfopen")
    grace = Settings().presence_grace

    async def scenario() -> float:
        watcher = await _watch(quick, channel)
        with ChaosProxy(quick.port) as proxy:
            victim = await Client.connect(f"ws://127.0.0.1:{proxy.port}")
            await victim.send({"type": "presence_join", "id": "j", "channel": channel, "info": "victim"})
            await victim.expect("ack", id="j")
            await watcher.expect("presence_diff")
            loop = asyncio.get_running_loop()
            started = loop.time()
            proxy.blackhole_existing()  # nothing passes either way, and nothing closes
            diff = None
            while diff is None:  # the watcher answers the server's pings meanwhile
                await watcher.send({"type": "ping"})
                try:
                    diff = await watcher.expect("presence_diff", timeout=0.5)
                except (AssertionError, TimeoutError):
                    assert loop.time() - started < 3 * 0.5 + 0.5 + grace + 10, "never left"
            assert [m["info"] for m in diff["leaves"]] == ["victim"]
            return loop.time() - started

    took = run(scenario)
    emit("presence.half_open", leave_s=took, bound_s=3 * 0.5 + 0.25 + grace)
    assert took >= grace  # the grace applies: a client may reconnect meanwhile
