"""The binary binding in Pyodide (Chromium) against the real serve.py: bytes and arrays both ways
between a browser client and a CPython one.

Pyodide here has no NumPy (no Pyodide build of it can be fetched offline), so arrays arrive in the
page as ``pyrt.NDArray`` and go to JavaScript through ``typed_array``; on the CPython side they are
NumPy arrays. Pyodide + NumPy is not tested.

Chromium only: the binary binding is wire format, not the reliability core; the socket adapter it
runs over is the same one the three-engine tests cover.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pyrt import WebSocketClient
from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from tests.server.cpython_support import until

pytestmark = pytest.mark.pyrt_engines("chromium")  # wire format, not the reliability core

MSGPACK_WHEEL = "msgpack-1.2.4-cp314-cp314-pyemscripten_2026_0_wasm32.whl"
ARRAYS = {
    "f4": np.linspace(0, 1, 12, dtype="<f4").reshape(3, 4),
    "i2be": np.arange(-3, 3, dtype=">i2"),
    "u8": np.arange(5, dtype="<u8") * 2**40,
    "b1": np.array([[True, False], [False, True]]),
}


@pytest.fixture(scope="module")
def page(pyrt_browser: Any, pyrt_server: ServerProcess) -> Iterator[PyodidePage]:
    """A page of its own: it loads msgpack, which would switch the shared page's clients to the
    binary binding."""
    with PyodidePage(pyrt_browser, pyrt_server.url) as page:
        yield page


def test_pyrt_does_not_load_msgpack_at_start_up_and_offers_json_without_it(page: PyodidePage) -> None:
    code = """
import sys
from pyrt.wire.protocols import get_protocol
["msgpack" in sys.modules, type(get_protocol("pyrt")).__name__]
"""
    assert page.run(code) == [False, "PyrtProtocol"]


def test_arrays_and_bytes_travel_between_pyodide_and_cpython(
    page: PyodidePage, pyrt_server: ServerProcess
) -> None:
    channel = "binary-browser"
    ws = f"{pyrt_server.ws_url}/ws"
    page.run(
        f"""
import importlib, pyodide_js
from js import fetch
# The wheel make setup vendors (scripts/vendor_wheels.py), installed without the lock: a page
# would call loadPackage("msgpack"), which needs the served lock to be this checkout's.
answer = await fetch("{pyrt_server.url}/vendor/pyodide/{MSGPACK_WHEEL}")
pyodide_js.unpackArchive(await answer.arrayBuffer(), "wheel")
importlib.invalidate_caches()
from pyrt import WebSocketClient, NDArray
from pyrt.browser.arrays import typed_array
got = []
client = WebSocketClient("{ws}", heartbeat=None)
await client.connect().wait_open(10)
client.subscribe("{channel}", lambda p: got.append(p.data))
await client.history("{channel}", limit=1)
type(client._engine.protocol).__name__
""",
        ns="bin",
    )

    seen: list[Any] = []
    published = threading.Event()
    failures: list[BaseException] = []

    async def cpython_side() -> None:
        async with WebSocketClient(ws, heartbeat=None) as peer:
            peer.subscribe(channel, lambda p: seen.append(p.data))
            await peer.history(channel, limit=1)
            for array in ARRAYS.values():
                await peer.publish(channel, array)
            await peer.publish(channel, b"\x00\xff from CPython")
            published.set()
            await until(lambda: len(seen) >= len(ARRAYS) + 3, timeout=40)

    def run_cpython_side() -> None:
        try:
            asyncio.run(cpython_side())
        except BaseException as exc:  # reported by the test's thread
            failures.append(exc)
            published.set()

    peer = threading.Thread(target=run_cpython_side)
    peer.start()
    assert published.wait(30)
    page.wait_for(f"len(got) >= {len(ARRAYS) + 1}", ns="bin", timeout=20)
    page.run(
        f"""
await client.publish("{channel}", b"\\x01\\x02 from Pyodide")
two_one = b"\\x00" * 7 + b"\\x40" + b"\\x00" * 6 + b"\\xf0\\x3f"  # 2.0, 1.0 little-endian
await client.publish("{channel}", NDArray("<f8", (2,), two_one))
True
""",
        ns="bin",
    )
    peer.join(60)
    assert not failures, failures
    received = page.run(
        """
import js
arrays = got[:4]
f4 = typed_array(arrays[0])
i2 = typed_array(arrays[1])
result = [
    [type(a).__name__ for a in arrays],
    [a.dtype for a in arrays],
    [list(a.shape) for a in arrays],
    [a.tolist() for a in arrays],
    got[4].hex(),
    [js.Object.prototype.toString.call(f4), f4.length, [round(f4[i], 6) for i in range(f4.length)]],
    [js.Object.prototype.toString.call(i2), [i2[i] for i in range(i2.length)]],
]
client.close()
await client.wait_closed(5)
result
""",
        ns="bin",
    )
    types, dtypes, shapes, values, raw, f4, i2 = received
    assert types == ["NDArray"] * 4
    assert dtypes == [a.dtype.str for a in ARRAYS.values()]
    assert shapes == [list(a.shape) for a in ARRAYS.values()]
    assert values == [a.tolist() for a in ARRAYS.values()]
    assert raw == b"\x00\xff from CPython".hex()
    assert f4[:2] == ["[object Float32Array]", 12]
    assert f4[2] == [round(float(x), 6) for x in ARRAYS["f4"].ravel()]
    assert i2 == ["[object Int16Array]", [-3, -2, -1, 0, 1, 2]]
    assert seen[-2] == b"\x01\x02 from Pyodide"
    assert isinstance(seen[-1], np.ndarray)
    assert seen[-1].tolist() == [2.0, 1.0]
