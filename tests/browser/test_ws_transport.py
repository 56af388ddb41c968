"""WebSocketClient in real Chromium + Pyodide against the real serve.py (``/echo`` and ``/ws``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from tests.faults.scenario import emit

SETUP = """
import asyncio, json
from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.aio.websocket import WebSocketClient
from pyrt.browser import proxies
"""


def new_cid() -> str:
    return "t" + uuid.uuid4().hex[:12]


def drop(server: ServerProcess, cid: str) -> int:
    """Abort the test client's connections on the server side (the browser sees 1006)."""
    answer = httpx.post(f"{server.url}/demo/drop", json={"cid": cid}, timeout=10)
    answer.raise_for_status()
    return int(answer.json()["dropped"])


def test_text_and_binary_echo_in_raw_mode(py: PyodidePage, pyrt_server: ServerProcess) -> None:
    code = (
        SETUP
        + f"""
client = WebSocketClient("{pyrt_server.ws_url}/echo", protocol="raw", heartbeat=None)
got = []
client.on_message(got.append)
await client.connect().wait_open(10)
import random
# 1 MiB that compresses about twice (one pattern repeated would inflate over the server's ratio)
payload = bytes(random.Random(7).choices(range(16), k=1024 * 1024))
client.send("héllo ✓")
client.send(payload)
client.send(bytearray(b"ab"))
client.send({{"json": [1, 2]}})
deadline = asyncio.get_running_loop().time() + 10
while len(got) < 4 and asyncio.get_running_loop().time() < deadline:
    await asyncio.sleep(0.01)
client.close()
await client.wait_closed(5)
[got[0], type(got[1]).__name__, got[1] == payload, got[2].hex(), got[3], client.state.name]
"""
    )
    assert py.run(code) == ["héllo ✓", "bytes", True, "6162", '{"json":[1,2]}', "CLOSED"]


def test_messages_and_acks_over_the_pyrt_protocol(py: PyodidePage, pyrt_server: ServerProcess) -> None:
    code = (
        SETUP
        + f"""
client = WebSocketClient("{pyrt_server.ws_url}/ws", heartbeat=None)
got = []
client.on_message(got.append)
async with client:
    client.send({{"hi": 1}})
    reply = await asyncio.wait_for(client.send_with_ack({{"n": 2}}), 10)
    while not got:
        await asyncio.sleep(0.01)
    session = client.session
[got, reply, bool(session), client.state.name]
"""
    )
    got, reply, has_session, state = py.run(code)
    assert got == [{"hi": 1}]
    assert reply is not None
    assert has_session
    assert state == "CLOSED"


def test_a_forced_disconnect_reconnects_and_delivers_queued_messages_in_order(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    cid = new_cid()
    ns = f"queue-{cid}"
    py.run(
        SETUP
        + f"""
client = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None,
                         backoff=Backoff(initial=0.5, jitter="none"))
got, reconnects = [], []
client.on_message(got.append)
client.on_reconnecting(lambda attempt, delay, reason: reconnects.append(reason))
await client.connect().wait_open(10)
first_session = client.session
""",
        ns=ns,
    )
    assert drop(pyrt_server, cid) == 1
    py.wait_for("client.state.name == 'RECONNECTING'", ns=ns)
    py.run("for n in range(20): client.send(n)", ns=ns)
    assert py.run("client.stats.queue_length", ns=ns) == 20
    py.wait_for("len(got) == 20", ns=ns)
    result = py.run("[got, reconnects, client.session != first_session, client.stats.reconnects]", ns=ns)
    py.run("client.close()", ns=ns)
    assert result == [list(range(20)), ["closed with code 1006"], True, 1]


def test_send_with_ack_across_a_forced_disconnect_resolves_exactly_once(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    cid = new_cid()
    ns = f"acks-{cid}"
    py.run(
        SETUP
        + f"""
client = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None,
                         backoff=Backoff(initial=0.2, jitter="none"))
await client.connect().wait_open(10)
outcomes = {{}}
def send(n):
    def done(future):
        outcomes.setdefault(n, []).append(repr(future.exception()) if future.exception() else "ok")
    client.send_with_ack({{"n": n}}).add_done_callback(done)
""",
        ns=ns,
    )
    stalled = httpx.post(f"{pyrt_server.url}/demo/stall", json={"cid": cid, "seconds": 60}, timeout=10)
    assert stalled.json() == {"stalled": 1}
    py.run("for n in range(50): send(n)", ns=ns)
    assert py.run("[len(outcomes), client.stats.pending_acks]", ns=ns) == [0, 50]  # all in flight
    assert drop(pyrt_server, cid) == 1
    py.run("for n in range(50, 100): send(n)", ns=ns)
    py.wait_for("len(outcomes) == 100", ns=ns, timeout=20)
    outcomes = py.run("outcomes", ns=ns)
    py.run("client.close()", ns=ns)
    assert all(value == ["ok"] for value in outcomes.values()), outcomes
    received = httpx.get(f"{pyrt_server.url}/demo/received", params={"cid": cid}, timeout=10).json()[
        "messages"
    ]
    assert [m["data"]["n"] for m in received] == list(range(100))


def test_a_subscription_survives_a_server_side_disconnect_without_gaps(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    cid = new_cid()
    channel = f"room-{cid}"
    ns = f"sub-{cid}"
    py.run(
        SETUP
        + f"""
client = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None,
                         backoff=Backoff(initial=60.0, maximum=60.0, jitter="none"))
seen = []
client.subscribe("{channel}", lambda p: seen.append([p.data, p.offset, p.recovered]))
await client.connect().wait_open(10)
""",
        ns=ns,
    )

    def publish(n: int) -> None:
        httpx.post(
            f"{pyrt_server.url}/publish", json={"channel": channel, "data": n}, timeout=10
        ).raise_for_status()

    py.wait_for("client.stats.received >= 2", ns=ns)  # welcome + subscribed
    for n in range(5):
        publish(n)
    py.wait_for("len(seen) == 5", ns=ns)
    drop(pyrt_server, cid)
    py.wait_for("client.state.name != 'OPEN'", ns=ns)
    for n in range(5, 10):
        publish(n)  # published while the client is away (its next attempt is a minute off)
    assert py.run("[client.state.name, len(seen)]", ns=ns) == ["RECONNECTING", 5]
    # The network is back: the client retries at once instead of at its backoff's time.
    py.run('import js\njs.dispatchEvent(js.Event.new("online"))', ns=ns)
    py.wait_for("client.state.name == 'OPEN'", ns=ns)
    for n in range(10, 15):
        publish(n)
    py.wait_for("len(seen) >= 15", ns=ns)
    seen = py.run("seen", ns=ns)
    py.run("client.close()", ns=ns)
    assert [data for data, _, _ in seen] == list(range(15))
    assert all(recovered for _, _, recovered in seen)


def test_publish_resolves_with_the_offset(py: PyodidePage, pyrt_server: ServerProcess) -> None:
    code = (
        SETUP
        + f"""
client = WebSocketClient("{pyrt_server.ws_url}/ws", heartbeat=None)
seen = []
async with client:
    client.subscribe("pub-test", seen.append)
    offset = await asyncio.wait_for(client.publish("pub-test", {{"x": 1}}), 10)
    while not seen:
        await asyncio.sleep(0.01)
[offset, seen[0].offset, seen[0].data]
"""
    )
    offset, delivered_offset, data = py.run(code)
    assert offset == delivered_offset
    assert data == {"x": 1}


def test_the_heartbeat_detects_a_connection_the_server_stops_answering(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    cid = new_cid()
    ns = f"hb-{cid}"
    py.run(
        SETUP
        + f"""
client = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}",
                         heartbeat=Heartbeat(interval=0.3, timeout=0.3),
                         backoff=Backoff(initial=0.1, jitter="none"))
reasons = []
client.on_reconnecting(lambda attempt, delay, reason: reasons.append(reason))
await client.connect().wait_open(10)
first_session = client.session
loop = asyncio.get_running_loop()
""",
        ns=ns,
    )
    answer = httpx.post(f"{pyrt_server.url}/demo/stall", json={"cid": cid, "seconds": 30}, timeout=10)
    answer.raise_for_status()
    py.run("stalled_at = loop.time()", ns=ns)
    py.wait_for("reasons", ns=ns, timeout=5)
    detected_after = py.run("loop.time() - stalled_at", ns=ns)
    py.wait_for("client.state.name == 'OPEN' and client.session != first_session", ns=ns, timeout=5)
    reasons = py.run("reasons", ns=ns)
    py.run("client.close()", ns=ns)
    assert "heartbeat timeout" in reasons[0]
    assert detected_after < 0.3 + 0.3 + 0.3 + 0.5  # idle interval + timeout (+ slack)


def test_a_manual_close_stops_reconnecting_and_later_sends_raise(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    code = (
        SETUP
        + f"""
from pyrt.errors import ClientClosedError
client = WebSocketClient("{pyrt_server.ws_url}/ws", heartbeat=None, backoff=Backoff(initial=0.05))
await client.connect().wait_open(10)
pending = client.send_with_ack("never acked?")
client.close()
closed = await client.wait_closed(5)
try:
    await pending
    ack = "resolved"
except Exception as exc:
    ack = type(exc).__name__
await asyncio.sleep(0.3)
try:
    client.send("late")
    late = "sent"
except ClientClosedError as exc:
    late = str(exc)
[client.state.name, closed.by_client, client.stats.reconnects, ack, late]
"""
    )
    state, by_client, reconnects, ack, late = py.run(code)
    assert [state, by_client, reconnects] == ["CLOSED", True, 0]
    assert ack == "ClientClosedError"
    assert late == "cannot send on a closed client; create a new one"


def test_live_proxies_return_to_baseline_after_200_connections(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    code = (
        SETUP
        + f"""
baseline = proxies.live_count()
peak = 0
for n in range(200):
    client = WebSocketClient("{pyrt_server.ws_url}/echo", protocol="raw", heartbeat=None)
    client.on_message(lambda m: None)
    await client.connect().wait_open(10)
    peak = max(peak, proxies.live_count())
    client.close()
    await client.wait_closed(5)
[baseline, peak, proxies.live_count()]
"""
    )
    baseline, peak, after = py.run(code, timeout=120)
    assert peak > baseline  # the count does see the client's proxies
    assert after == baseline


def test_pagehide_saves_unacked_messages_to_local_storage_for_the_next_page(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    cid = new_cid()
    key = f"pyrt-test-{cid}"
    ns = f"persist-{cid}"
    py.run(
        SETUP
        + f"""
import js
first = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None, persist="{key}")
await first.connect().wait_open(10)
""",
        ns=ns,
    )
    httpx.post(
        f"{pyrt_server.url}/demo/stall", json={"cid": cid, "seconds": 60}, timeout=10
    ).raise_for_status()
    saved = py.run(
        """
from pyrt.browser.storage import LocalStorageStore
pending = [first.send_with_ack({"n": n}) for n in range(3)]
js.window.dispatchEvent(js.Event.new("pagehide"))  # what the browser fires on reload
loaded = []
LocalStorageStore().load(KEY, loaded.append, print)  # synchronous: what is stored right now
[first.storage_kind, len(loaded[0].frames)]
""".replace("KEY", repr(key)),
        ns=ns,
    )
    assert saved == ["localStorage", 3]
    assert py.run("first.state.name", ns=ns) == "PAUSED"  # waiting for pageshow
    py.run(
        f"""
second = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None, persist="{key}")
await second.connect().wait_open(10)
""",
        ns=ns,
    )
    py.wait_for("second.stats.pending_acks == 0 and second.stats.acked == 3", ns=ns, timeout=10)
    cleanup = """
first.close(); second.close()
for name in js.Object.keys(js.localStorage).to_py():
    if name.startswith('pyrt:' + KEY + ':'): js.localStorage.removeItem(name)
"""
    py.run(cleanup.replace("KEY", repr(key)), ns=ns)
    received = httpx.get(f"{pyrt_server.url}/demo/received", params={"cid": cid}, timeout=10).json()[
        "messages"
    ]
    assert [m["data"]["n"] for m in received] == [0, 1, 2]


def test_the_online_event_cuts_a_long_backoff_short(py: PyodidePage, pyrt_server: ServerProcess) -> None:
    cid = new_cid()
    ns = f"online-{cid}"
    py.run(
        SETUP
        + f"""
import js
client = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None,
                         backoff=Backoff(initial=60.0, maximum=60.0, jitter="none"))
await client.connect().wait_open(10)
""",
        ns=ns,
    )
    drop(pyrt_server, cid)
    py.wait_for("client.state.name == 'RECONNECTING'", ns=ns)
    py.run("js.window.dispatchEvent(js.Event.new('online'))", ns=ns)
    py.wait_for("client.state.name == 'OPEN'", ns=ns, timeout=5)
    py.run("client.close()", ns=ns)


def test_a_burst_of_text_and_binary_frames_arrives_complete_and_in_order(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    # Echoed back to back, the replies cross into Python in batches (see ws_transport._Socket).
    code = (
        SETUP
        + f"""
baseline = proxies.live_count()
client = WebSocketClient("{pyrt_server.ws_url}/echo", protocol="raw", heartbeat=None)
got = []
client.on_message(got.append)
await client.connect().wait_open(10)
sent = []
for n in range(2000):
    frame = n.to_bytes(2, "big") if n % 250 == 0 else f"m{{n}}"
    sent.append(frame)
    client.send(frame)
deadline = asyncio.get_running_loop().time() + 20
while len(got) < len(sent) and asyncio.get_running_loop().time() < deadline:
    await asyncio.sleep(0.01)
client.close()
await client.wait_closed(5)
[got == sent, len(got), proxies.live_count() - baseline]
"""
    )
    assert py.run(code, timeout=60) == [True, 2000, 0]


def test_frames_after_quiet_spells_text_and_binary_in_turn_arrive_each_once_in_order(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    # Each reply comes after a quiet spell: the wake-up listener delivers it (the text ones stay
    # in the JS queue as delivered, a binary one empties it), never the batch task a second time.
    # (Random bytes: the server refuses frames that inflate too well.)
    code = (
        SETUP
        + f"""
import random
client = WebSocketClient("{pyrt_server.ws_url}/echo", protocol="raw", heartbeat=None)
got = []
client.on_message(got.append)
await client.connect().wait_open(10)
sent = ["a", "b", random.Random(1).randbytes(65536), "c", bytes([0]), bytes([1]), "d"]
for frame in sent:
    expected = len(got) + 1
    client.send(frame)
    deadline = asyncio.get_running_loop().time() + 10
    while len(got) < expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # quiet: the batch task has run and found nothing more
client.close()
await client.wait_closed(5)
[got == sent, len(got)]
"""
    )
    assert py.run(code, timeout=60) == [True, 7]


def test_a_connected_client_has_not_imported_urllib_or_ipaddress(
    pyrt_server: ServerProcess, pyrt_new_page: Callable[..., PyodidePage]
) -> None:
    # Compiling urllib.parse with ipaddress was the largest single cost of a first connect in
    # Pyodide (the stdlib ships as sources); a client over WebSocket needs neither. A fresh page:
    # the module's page has run other clients.
    page = pyrt_new_page(pyrt_server)
    code = f"""
import sys
from pyrt import WebSocketClient
before = {{"urllib.parse", "ipaddress"}} & set(sys.modules)
client = WebSocketClient("{pyrt_server.ws_url}/ws")
got = []
client.on_message(got.append)
client.send({{"hello": 1}})
await client.connect().wait_open(10)
while not got:
    await asyncio.sleep(0.01)
client.close()
await client.wait_closed(5)
[sorted(before), sorted({{"urllib.parse", "ipaddress"}} & set(sys.modules)), client.transport]
"""
    assert page.run("import asyncio\n" + code, timeout=60) == [[], [], "websocket"]


def test_a_token_callable_opens_refreshes_in_place_and_serves_fetch_event_source_too(
    py: PyodidePage, pyrt_server: ServerProcess, pyrt_start_server: Callable[..., ServerProcess]
) -> None:
    # A server with tokens, on another origin that lets the page's origin in. The page's token
    # callable hands out tokens that each last two seconds longer than the one before (so that
    # every refresh, at 3/4 of the time left, gets a later expiry); they are made here, as the
    # application's token endpoint would.
    secret = "browser-token-secret"
    secured = pyrt_start_server("--allowed-origin", pyrt_server.url, env={"PYRT_TOKEN_SECRET": secret})
    ns = f"token-{uuid.uuid4().hex[:8]}"
    # Imported first: the tokens' clock starts when the page can use them at once (a first import
    # of the clients takes a second or more in WebKit on a busy machine).
    py.run(SETUP + "from pyrt.aio.fetch_event_source import FetchEventSource", ns=ns)
    start = time.time()
    tokens = [make_token(secret, "alice", ttl=4 + 2 * n, now=start) for n in range(40)]
    channel = "tok-" + uuid.uuid4().hex[:8]
    code = f"""
tokens = {tokens!r}
handed = []
async def token():
    handed.append(tokens[len(handed)])
    return handed[-1]
ws = WebSocketClient("{secured.ws_url}/ws", token=token, backoff=Backoff(initial=0.05, maximum=0.2))
opens = []
ws.on_open(lambda: opens.append(1))
got = []
ws.subscribe("{channel}", lambda p: got.append(p.data))
await ws.connect().wait_open(10)
sse = FetchEventSource("{secured.url}/sse?channel={channel}", token=token,
                       backoff=Backoff(initial=0.05, maximum=0.2))
sse_opens = []
sse.on_open(lambda: sse_opens.append(1))
sse_got = []
sse.on_message(lambda event: sse_got.append(event.json()))
sse.connect()
loop = asyncio.get_running_loop()
deadline = loop.time() + 25
while (ws.stats.token_refreshes < 2 or len(sse_opens) < 2) and loop.time() < deadline:
    await asyncio.sleep(0.05)
offset = await asyncio.wait_for(ws.publish("{channel}", "still connected"), 10)
while ("still connected" not in got or "still connected" not in sse_got) and loop.time() < deadline:
    await asyncio.sleep(0.05)
result = [ws.stats.token_refreshes, len(opens), ws.stats.reconnects, len(sse_opens), got, sse_got,
          len(handed), ws.state.name, proxies.live_count()]
ws.close()
sse.close()
await ws.wait_closed(5)
await sse.wait_closed(5)
result + [proxies.live_count()]
"""
    refreshes, opens, reconnects, sse_opens, got, sse_got, handed, state, _live, live_after = py.run(
        code, ns=ns, timeout=45
    )
    emit("browser.token_refresh", refreshes=refreshes, sse_reopens=sse_opens - 1, tokens=handed)
    assert refreshes >= 2  # refreshed in place, twice, on the one connection
    assert opens == 1
    assert reconnects == 0
    assert state == "OPEN"
    assert sse_opens >= 2  # the stream ended with its token and reopened with a fresh one
    assert got == ["still connected"]
    assert "still connected" in sse_got
    assert handed >= 1 + 2 + 2  # one per attempt and per refresh, for both clients
    assert live_after == 0
    log = secured.log_text()
    assert "GET /sse?channel=" in log
    for token in tokens[:handed]:
        assert token.split(".")[1] not in log  # never in a URL, nor anywhere in the server's log
