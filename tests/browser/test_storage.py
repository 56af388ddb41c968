"""``persist=`` stores in real Chromium: IndexedDB and localStorage records, proxies, no storage.

The stores of :mod:`pyrt.browser.storage` apply batches of records and load them back; the
IndexedDB store's proxies are all destroyed; an older pyrt's snapshot is taken over; a context
with neither ``localStorage`` nor IndexedDB makes the client say so once; and a page-thread client
that chose IndexedDB keeps its unacknowledged messages across a reload.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess

HELPERS = """
import asyncio, js
from pyrt.browser import proxies
from pyrt.browser.storage import IndexedDBStore, LocalStorageStore
from pyrt.persist.records import Changes, SavedFrame, Snapshot, dumps

loop = asyncio.get_running_loop()

def record(seq):
    return SavedFrame('{"type":"message","id":"a-%d","data":%d}' % (seq, seq), f"a-{seq}", "message", seq)

async def write(store, key, changes):
    done = loop.create_future()
    store.write(key, changes, done.set_result)
    error = await done
    assert error is None, error

async def load(store, key):
    done = loop.create_future()
    store.load(key, done.set_result, done.set_result)
    return await done
"""


def test_the_indexeddb_store_applies_batches_and_destroys_its_proxies(py: PyodidePage) -> None:
    key = "idb-" + uuid.uuid4().hex[:8]
    result = py.run(
        HELPERS
        + f"""
before = proxies.live_count()
store = IndexedDBStore()
await write(store, "{key}", Changes(puts={{s: record(s) for s in (1, 2, 3)}}, offsets={{"news": "1-7"}}))
await write(store, "{key}", Changes(deletes={{2}}, puts={{4: record(4)}}))
during = proxies.live_count()
again = IndexedDBStore()
snapshot = await load(again, "{key}")
other = await load(again, "{key}-other")
await write(store, "{key}", Changes(deletes={{1, 3, 4}}))
emptied = await load(again, "{key}")
store.dispose()
again.dispose()
[[s.seq for s in snapshot.frames], snapshot.offsets, snapshot.frames[0] == record(1), len(other.frames),
 len(emptied.frames), during > before, proxies.live_count() - before]
"""
    )
    assert result == [[1, 3, 4], {"news": "1-7"}, True, 0, 0, True, 0]


def test_the_local_storage_store_keeps_one_item_per_record_and_takes_over_an_older_snapshot(
    py: PyodidePage,
) -> None:
    key = "ls-" + uuid.uuid4().hex[:8]
    result = py.run(
        HELPERS
        + f"""
js.localStorage.setItem("{key}", dumps(Snapshot((SavedFrame("old frame", "o-1"),), {{"news": "1-2"}})))
store = LocalStorageStore()
taken = await load(store, "{key}")
await write(store, "{key}", Changes(puts={{2: record(2)}}))
names = sorted(n for n in js.Object.keys(js.localStorage).to_py() if "{key}" in n)
again = await load(LocalStorageStore(), "{key}")
await write(store, "{key}", Changes(deletes={{1, 2}}))
js.localStorage.removeItem("pyrt:{key}:offsets")
[[(s.frame, s.seq) for s in taken.frames], taken.offsets, names, [s.seq for s in again.frames]]
"""
    )
    frames, offsets, names, seqs = result
    assert frames == [["old frame", 1]]
    assert offsets == {"news": "1-2"}
    assert names == [f"pyrt:{key}:1", f"pyrt:{key}:2", f"pyrt:{key}:offsets"]  # the old item is gone
    assert seqs == [1, 2]


def test_without_local_storage_or_indexeddb_a_client_says_so_once(
    pyrt_new_page: Callable[..., PyodidePage], pyrt_server: ServerProcess
) -> None:
    page = pyrt_new_page(pyrt_server.url)
    result = page.run(
        f"""
import js
from pyodide.ffi import to_js
# A context with neither: hide both (a sandboxed frame throws instead; pyrt treats both alike).
for name in ("localStorage", "indexedDB"):
    js.Object.defineProperty(js.window, name, to_js({{"value": None}}, dict_converter=js.Object.fromEntries))
from pyrt import WebSocketClient
errors = []
client = WebSocketClient("{pyrt_server.ws_url}/ws", heartbeat=None, persist="nowhere")
client.on_error(lambda e: errors.append(type(e).__name__ + ": " + str(e)))
await client.connect().wait_open(10)
reply = await client.send_with_ack("still works")
client.close()
[errors, client.durable, client.storage_kind, reply]
"""
    )
    errors, durable, kind, reply = result
    assert len(errors) == 1
    assert errors[0].startswith("StorageUnavailable: persist='nowhere'")
    assert (durable, kind, reply) == (False, "memory", "still works")


def test_a_page_client_on_indexeddb_keeps_its_unacked_messages_across_a_reload(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    page = py  # the session's page: the reload leaves it fresh for later tests
    cid = "idb" + uuid.uuid4().hex[:10]
    key = f"pyrt-idb-{cid}"
    url = f"{pyrt_server.ws_url}/ws?cid={cid}"
    client = f"""
from pyrt import WebSocketClient
from pyrt.browser.storage import IndexedDBStore
c = WebSocketClient("{url}", heartbeat=None, persist="{key}", storage=IndexedDBStore())
"""
    page.run(client + "await c.connect().wait_open(10)", ns=f"first-{cid}")
    stall = {"cid": cid, "seconds": 60}
    httpx.post(f"{pyrt_server.url}/demo/stall", json=stall, timeout=10).raise_for_status()
    pending = "pending = [c.send_with_ack({'n': n}) for n in range(3)]\nawait c.persisted()"
    page.run(pending, ns=f"first-{cid}")
    page.reload()  # pagehide: the socket closes; the records are in IndexedDB already
    restored = page.run(
        client + "outcomes = []\nc.on_restored(lambda m: outcomes.append([m.data['n'], m.ok]))\n"
        "c.connect()\nNone",
        ns=f"second-{cid}",
    )
    assert restored is None
    page.wait_for("len(outcomes) == 3 and c.stats.pending_acks == 0", ns=f"second-{cid}", timeout=15)
    outcomes, kind = page.run("[sorted(outcomes), c.storage_kind]", ns=f"second-{cid}")
    page.run("c.close()", ns=f"second-{cid}")
    answer = httpx.get(f"{pyrt_server.url}/demo/received", params={"cid": cid}, timeout=10)
    received = answer.json()["messages"]
    assert [m["data"]["n"] for m in received] == [0, 1, 2]
    assert outcomes == [[0, True], [1, True], [2, True]]
    assert kind == "indexeddb"
