"""PyodidePage: pyrt runs inside Pyodide in Chromium with the user's files, talks to the test server,
loads nothing from outside, and every failure comes back with the Python traceback and the page's story."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from pyrt.pytest_plugin.pyodide_page import PyodideError, PyodidePage, pack_files
from pyrt.pytest_plugin.server_process import ServerProcess

pytestmark = pytest.mark.pyrt_engines("chromium")  # the plugin itself, in its default engine


def test_pyrt_imports_inside_pyodide_from_the_working_tree(py: PyodidePage) -> None:
    info = py.run("import sys, pyrt\n[sys.platform, sys.version_info[:2], pyrt.__version__, pyrt.__file__]")
    platform, version, pyrt_version, path = info
    assert platform == "emscripten"
    assert tuple(version) >= (3, 14)
    assert pyrt_version == __import__("pyrt").__version__
    assert path == "/home/pyodide/pyrt/__init__.py"
    assert py.timings["bootMs"] > 0
    assert py.timings["totalMs"] >= py.timings["bootMs"]


def test_the_plugin_itself_never_reaches_the_browser(py: PyodidePage) -> None:
    found = py.run(
        "import importlib.util\n[importlib.util.find_spec(n) is not None for n in "
        "('pyrt.browser', 'pyrt.pytest_plugin', 'pyrt.server')]"
    )
    assert found == [True, False, False]


def test_text_and_binary_round_trip_through_the_echo_endpoint(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    code = f"""
import asyncio, js
from pyodide.ffi import create_proxy, to_js

ws = js.WebSocket.new("{pyrt_server.ws_url}/echo")
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


def test_server_sent_events_arrive_through_js_eventsource(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    channel = "harness-sse"
    offsets = [
        httpx.post(
            pyrt_server.url + "/publish", json={"channel": channel, "event": "tick", "data": {"n": n}}
        ).json()["offset"]
        for n in (1, 2, 3)
    ]
    code = f"""
import asyncio, js, json
from pyodide.ffi import create_proxy

source = js.EventSource.new("{pyrt_server.url}/sse?channel={channel}&lastEventId=0")
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
    assert py.blocked_requests == []


def test_python_errors_surface_with_the_traceback_of_the_test_code_only(py: PyodidePage) -> None:
    with pytest.raises(PyodideError, match="ZeroDivisionError") as failed:
        py.run("x = 1\nx / 0")
    assert 'File "<test code>", line 2, in <module>' in failed.value.python_traceback
    assert "_pyodide" not in failed.value.python_traceback  # the harness's frames are left out
    assert failed.value.page is py


def test_namespaces_are_fresh_unless_named(py: PyodidePage) -> None:
    py.run("x = 41", ns="kept")
    assert py.run("x + 1", ns="kept") == 42
    with pytest.raises(PyodideError, match="NameError"):
        py.run("x")


def test_a_result_that_is_not_json_and_a_call_that_takes_too_long_are_errors(py: PyodidePage) -> None:
    with pytest.raises(PyodideError, match="result is not JSON-able"):
        py.run("object()")
    with pytest.raises(PyodideError, match="did not finish within 200 ms"):
        py.run("import asyncio\nawait asyncio.sleep(5)", timeout=0.2)


def test_expected_blocked_requests_are_recorded_apart_and_fail_nothing(py: PyodidePage) -> None:
    code = """
import js
try:
    await js.fetch("https://cdn.example.invalid/lib.js")
except Exception as exc:
    failed = type(exc).__name__
failed
"""
    with py.expect_blocked() as blocked:
        assert py.run(code) == "JsException"
    assert blocked == ["GET https://cdn.example.invalid/lib.js"]
    assert py.blocked_requests == []


def test_the_users_files_and_folders_are_importable(
    pyrt_new_page: Callable[..., PyodidePage], tmp_path: Path
) -> None:
    (tmp_path / "chat.py").write_text("ROOM = 'lobby'\n")
    package = tmp_path / "shop"
    (package / "cart").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cart" / "__init__.py").write_text("ITEMS = 3\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    (tmp_path / "settings.json").write_text('{"debug": true}')
    page = pyrt_new_page(files=[tmp_path / "chat.py", package, tmp_path / "settings.json"])
    found = page.run(
        "import chat, shop.cart, json, os\n"
        "[chat.ROOM, shop.cart.ITEMS, json.load(open('/home/pyodide/settings.json')), "
        "os.path.exists('/home/pyodide/shop/__pycache__')]"
    )
    assert found == ["lobby", 3, {"debug": True}, False]
    page.reload()  # the files come back with the page; Python state does not
    assert page.run("import chat; chat.ROOM") == "lobby"


def test_files_can_be_renamed_and_collisions_or_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.py").write_text("")
    assert pack_files({"app/main.py": tmp_path / "a.py"})
    with pytest.raises(ValueError, match=r"two files would land on /home/pyodide/a\.py"):
        pack_files([tmp_path / "a.py", tmp_path / "b" / "a.py"])
    with pytest.raises(FileNotFoundError, match=r"nothing\.py does not exist"):
        pack_files([tmp_path / "nothing.py"])


def test_a_server_without_pyodide_fails_the_boot_with_the_reason(
    pyrt_browser: Browser, pyrt_start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    bare = pyrt_start_server("--node-modules", str(tmp_path))
    with pytest.raises(PyodideError, match="the page did not boot") as failed:
        PyodidePage(pyrt_browser, bare.url, boot_timeout=20)
    message = str(failed.value)
    assert f"503 GET {bare.url}/vendor/pyodide/pyodide.mjs" in message
    assert "Pyodide is not served" in message
