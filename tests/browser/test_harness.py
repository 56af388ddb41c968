"""pyrt runs inside Pyodide in Chromium, talks to the test server, and loads nothing from outside."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.pyodide_page import PyodideError, PyodidePage
from tests.serverproc import ServerProcess


def test_pyrt_imports_inside_pyodide_from_the_working_tree(py: PyodidePage) -> None:
    info = py.run(
        "import sys, pyrt\n"
        "[sys.platform, sys.version_info[:2], pyrt.__version__, pyrt.__file__]"
    )
    platform, version, pyrt_version, path = info
    assert platform == "emscripten"
    assert tuple(version) >= (3, 14)
    assert pyrt_version == __import__("pyrt").__version__
    assert path == "/home/pyodide/pyrt/__init__.py"


def test_text_and_binary_round_trip_through_the_echo_endpoint(py: PyodidePage, server: ServerProcess) -> None:
    code = f"""
import asyncio, js
from pyodide.ffi import create_proxy, to_js

ws = js.WebSocket.new("{server.ws_url}/echo")
ws.binaryType = "arraybuffer"
got = asyncio.Queue()
def on_message(event):
    data = event.data
    got.put_nowait(data if isinstance(data, str) else bytes(js.Uint8Array.new(data).to_py()))
opened = asyncio.get_running_loop().create_future()
p_msg = create_proxy(on_message)
p_open = create_proxy(lambda e: opened.set_result(True))
ws.addEventListener("message", p_msg)
ws.addEventListener("open", p_open)
await asyncio.wait_for(opened, 10)
payload = bytes(range(256)) * 4
ws.send("héllo ✓")
ws.send(to_js(memoryview(payload)))
text = await asyncio.wait_for(got.get(), 10)
binary = await asyncio.wait_for(got.get(), 10)
ws.close()
p_msg.destroy(); p_open.destroy()
[text, binary == payload, len(binary)]
"""
    assert py.run(code) == ["héllo ✓", True, 1024]


def test_server_sent_events_arrive_through_js_eventsource(py: PyodidePage, server: ServerProcess) -> None:
    channel = "harness-sse"
    offsets = [
        httpx.post(
            server.url + "/publish", json={"channel": channel, "event": "tick", "data": {"n": n}}
        ).json()["offset"]
        for n in (1, 2, 3)
    ]
    code = f"""
import asyncio, js, json
from pyodide.ffi import create_proxy

source = js.EventSource.new("{server.url}/sse?channel={channel}&lastEventId=0")
got = []
done = asyncio.get_running_loop().create_future()
def on_tick(event):
    got.append([event.lastEventId, json.loads(event.data)["n"]])
    if len(got) == 3 and not done.done():
        done.set_result(None)
proxy = create_proxy(on_tick)
source.addEventListener("tick", proxy)
await asyncio.wait_for(done, 10)
source.close()
proxy.destroy()
got
"""
    assert py.run(code) == [[offsets[0], 1], [offsets[1], 2], [offsets[2], 3]]


def test_the_page_loaded_nothing_from_outside_the_test_server(py: PyodidePage) -> None:
    assert py.requests, "the page made no request at all: the request log is broken"
    assert all(url.startswith(py.origin + "/") for url in py.requests), py.requests
    assert py.foreign_requests == []


def test_python_errors_surface_with_their_traceback(py: PyodidePage) -> None:
    with pytest.raises(PyodideError, match="ZeroDivisionError"):
        py.run("1 / 0")


def test_namespaces_are_fresh_unless_named(py: PyodidePage) -> None:
    py.run("x = 41", ns="kept")
    assert py.run("x + 1", ns="kept") == 42
    with pytest.raises(PyodideError, match="NameError"):
        py.run("x")


def test_pyscript_page_runs_pyrt_offline(new_py, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    page = new_py(server.url, "/pyodide.html")
    pyscript = page.context.new_page()
    requests: list[str] = []
    pyscript.on("request", lambda request: requests.append(request.url))
    pyscript.goto(server.url + "/hello.html")
    status = pyscript.locator("#status")
    status.filter(has_text="running in Pyodide").wait_for(timeout=60_000)
    assert f"pyrt {__import__('pyrt').__version__}" in status.inner_text()
    assert all(url.startswith(server.url + "/") for url in requests), requests
