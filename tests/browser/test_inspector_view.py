"""client.inspect().mount(...) in real Chromium + Pyodide against the real serve.py: the page shows
a reconnect with its reason and an ack matched to its send, and a detached view leaves nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess

# The view is DOM and timers only, the same in every engine: not part of the reliability core.
pytestmark = pytest.mark.pyrt_engines("chromium")


def test_a_mounted_inspector_shows_the_reconnect_reason_and_a_matched_ack_then_detaches_cleanly(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    cid = "insp" + uuid.uuid4().hex[:10]
    ns = f"inspector-{cid}"
    py.run(
        f"""
import js
from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.browser import proxies
proxies_before = proxies.live_count()
box = js.document.createElement("div")
box.id = "{cid}"
js.document.body.appendChild(box)
client = WebSocketClient("{pyrt_server.ws_url}/ws?cid={cid}", heartbeat=None,
                         backoff=Backoff(initial=0.2, jitter="none"))
inspector = client.inspect()
view = inspector.mount("#{cid}")
await client.connect().wait_open(10)
client.subscribe("{cid}-room", lambda p: None)
""",
        ns=ns,
    )
    dropped = httpx.post(f"{pyrt_server.url}/demo/drop", json={"cid": cid}, timeout=10)
    assert dropped.json()["dropped"] == 1
    py.wait_for("client.stats.reconnects == 1 and client.state.name == 'OPEN'", ns=ns)
    py.run(f"offset = await client.publish('{cid}-room', {{'n': 1}})", ns=ns)
    py.wait_for("'answers publish' in js.document.getElementById(box.id).innerText", ns=ns)
    text = py.run("js.document.getElementById(box.id).innerText", ns=ns)
    assert "open → reconnecting" in text
    assert "closed with code 1006" in text
    assert "answers publish #" in text
    assert f'{cid}-room {{"n":1}}' in text
    assert "recovered" in text  # the channel's row after the resubscribe
    leftover = py.run(
        """
inspector.close()
client.close()
await client.wait_closed(5)
[box.childElementCount, proxies.live_count() - proxies_before, "_dispatch" in vars(client),
 sorted(set(vars(client._engine)) & {"actions", "received", "send"})]
""",
        ns=ns,
    )
    py.run("box.remove()", ns=ns)
    assert leftover == [0, 0, False, []]
