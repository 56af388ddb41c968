"""The pytest plugin, used the way a project that depends on ``pyrt[testing]`` uses it: throw-away
test projects run by pytest in a subprocess (``pytester``), with their own conftest and files."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.offsets import offset_key

pytestmark = pytest.mark.pyrt_engines("chromium")  # the plugin itself, in its default engine

pytest_plugins = ["pytester"]

GOOD_CONFTEST = """
from pathlib import Path
import pytest

@pytest.fixture
def pyrt_page_files():
    return [Path(__file__).parent / "room.py"]
"""

ROOM = """
import asyncio
from pyrt import Backoff, Heartbeat, WebSocketClient

async def echo_through(url, count):
    client = WebSocketClient(url, heartbeat=Heartbeat(interval=0.3, timeout=0.3),
                             backoff=Backoff(initial=0.05, maximum=0.3))
    client.connect()
    await client.wait_open(10)
    replies = [await client.send_with_ack({"seq": n}, timeout=10) for n in range(count)]
    client.close()
    return [reply["seq"] for reply in replies]
"""

GOOD_TESTS = """
from pyrt.pytest_plugin import check_delivery, wait_until

def test_a_page_talks_to_the_server_through_the_proxy(pyrt_server, pyrt_proxy, pyrt_new_page):
    page = pyrt_new_page(pyrt_proxy)  # the page and all its traffic cross the proxy
    seqs = page.run("import room\\nawait room.echo_through('/ws', 5)")
    check_delivery(range(5), seqs).assert_exactly_once_in_order()
    wait_until(lambda: pyrt_proxy.stats.bytes_up > 0, 5, "traffic crossed the proxy")
    assert pyrt_server.metric("process_start_time_seconds") > 0

def test_a_second_server_and_an_app_page(pyrt_start_server, pyrt_open_page):
    server = pyrt_start_server("--heartbeat", "5")
    app = pyrt_open_page(server, "/hello.html")
    app.page.locator("#status").filter(has_text="running in Pyodide").wait_for(timeout=60_000)
    assert app.blocked_requests == []
"""

BROKEN_ROOM = """
import js

async def start():
    try:
        await js.fetch("https://cdn.example.invalid/chat.js")
    except Exception:
        js.console.error("chat failed to start: its script did not load")
    raise RuntimeError("the chat room is broken")
"""

BROKEN_TESTS = """
def test_the_broken_room_starts(pyrt_page):
    pyrt_page.run("import broken_room\\nawait broken_room.start()")

PHONE_HOME = '''
import js
try:
    await js.fetch("https://telemetry.example.invalid/hit")
except Exception:
    pass
'''

def test_a_page_that_phones_home_fails_even_when_its_code_passes(pyrt_new_page):
    page = pyrt_new_page(files=[])
    page.run(PHONE_HOME)
"""


def run_project(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A subprocess: the outer session's sync Playwright owns this thread's event loop.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=300)


def test_a_project_using_the_fixtures_passes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(GOOD_CONFTEST)
    pytester.makepyfile(room=ROOM, test_room=GOOD_TESTS)
    result = run_project(pytester)
    result.assert_outcomes(passed=2)


def test_a_broken_page_fails_with_a_readable_report(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(GOOD_CONFTEST.replace("room.py", "broken_room.py"))
    pytester.makepyfile(broken_room=BROKEN_ROOM, test_broken=BROKEN_TESTS)
    written = (pytester.path / "broken_room.py").read_text().splitlines()
    raising = next(n for n, line in enumerate(written, 1) if "raise RuntimeError" in line)
    result = run_project(pytester)
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # The Python traceback, from the user's file, without the harness's frames:
    result.stdout.fnmatch_lines(
        [
            "*Python failed inside the page:*",
            '*File "<test code>", line 2, in <module>*',
            f'*File "/home/pyodide/broken_room.py", line {raising}, in start*',
            "*RuntimeError: the chat room is broken*",
            "*--- page console (last 40) ---*",
            "*[[]error[]] chat failed to start: its script did not load*",
            "*--- requests that tried to leave localhost (blocked) ---*",
            "*GET https://cdn.example.invalid/chat.js*",
        ]
    )
    assert "_pyodide/_base.py" not in out
    assert "- pyrt server http://127.0.0.1:" in out  # the server's log during the test
    # A page whose code passes but reached outside localhost fails too, naming the request:
    result.stdout.fnmatch_lines(
        [
            "*test_a_page_that_phones_home_fails_even_when_its_code_passes*",
            "*a page tried to reach something outside localhost:*",
            "*GET https://telemetry.example.invalid/hit*",
        ]
    )


def test_without_playwright_the_plugin_stays_out_of_the_way_and_says_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest("import sys\nsys.modules['playwright'] = None  # as if it were not installed\n")
    pytester.makepyfile(
        test_plain="""
def test_unrelated():
    assert 1 + 1 == 2

def test_wants_a_page(pyrt_page):
    pass
"""
    )
    result = run_project(pytester, "-p", "no:playwright")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(['*pyrt_browser needs playwright: pip install "pyrt[[]testing[]]"*'])
    assert "During handling" not in result.stdout.str()


def test_loading_the_plugin_imports_neither_playwright_nor_the_server() -> None:
    heavy = ["playwright", "pytest_playwright", "starlette", "uvicorn", "httpx", "redis", "asyncio"]
    code = (
        "import sys, pyrt.pytest_plugin.plugin\n"
        f"print(sorted(name for name in {heavy!r} if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_redis_backed_servers_of_one_test_share_channels_under_a_prefix_of_their_own(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    first, second = pyrt_start_server(redis=True), pyrt_start_server(redis=True)
    offsets = [
        httpx.post(f"{server.url}/publish", json={"channel": "shared", "data": n}).json()["offset"]
        for n, server in enumerate((first, second))
    ]
    assert all(re.fullmatch(r"\d+-\d+", offset) for offset in offsets)  # Redis stream ids
    assert offset_key(offsets[1]) > offset_key(offsets[0])  # one stream, written by both
    prefix = pyrt_start_server.redis_prefix
    assert f"--redis-prefix {prefix}" in " ".join(first.args)
    assert prefix.startswith("pyrt-test-")
