"""The pytest plugin, used the way a project that depends on ``pyrt[testing]`` uses it: throw-away
test projects run by pytest in a subprocess (``pytester``), with their own conftest and files."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pyrt.pytest_plugin.plugin import selected_engines
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.offsets import offset_key
from tests import REPO

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


UNSERVED_CONFTEST = """
from pathlib import Path
import pytest

@pytest.fixture(scope="session")
def pyrt_node_modules(pytestconfig):
    # What the plugin chooses for a project with pyrt installed from a package and no npm install
    # yet (a pyrt checkout has its own, which the default would use).
    return pytestconfig.rootpath / "node_modules"

@pytest.fixture(scope="session")
def pyrt_server_args():
    return ["--web-dir", str(Path(__file__).parent / "app")]
"""

UNSERVED_PAGE = """<!doctype html>
<link rel="stylesheet" href="/vendor/pyscript/core.css">
<script type="module" src="/vendor/pyscript/core.js"></script>
<p id="status">loading</p>
<script type="py" config='{"interpreter": "/vendor/pyodide/pyodide.mjs", "files": {"/pyrt.zip": "./*"}}'>
from pyscript import document
document.getElementById("status").textContent = "OPEN"
</script>
"""

UNSERVED_TESTS = """
import time
from playwright.sync_api import expect

def timed(open_page):
    started = time.monotonic()
    try:
        return open_page()
    finally:
        print(f"@@ {time.monotonic() - started:.1f} s")

def test_my_page_without_node_modules(pyrt_open_page):
    app = timed(lambda: pyrt_open_page(path="/index.html"))
    expect(app.page.locator("#status")).to_have_text("OPEN", timeout=90_000)

def test_a_pyodide_page_without_node_modules(pyrt_new_page):
    timed(lambda: pyrt_new_page())

def test_my_page_on_a_server_without_web_dir(pyrt_start_server, pyrt_open_page):
    server = pyrt_start_server()  # --web-dir forgotten
    timed(lambda: pyrt_open_page(server, "/chat.html"))
"""


@pytest.mark.parametrize("engine", ["chromium", "webkit"])
def test_a_page_that_cannot_be_served_fails_within_seconds_saying_why_and_the_fix(
    pytester: pytest.Pytester, pytestconfig: pytest.Config, engine: str
) -> None:
    """In Chromium the plugin reads the answers the browser saw; in WebKit (classic WebDriver
    tells no status) it asks the local server again: the same failure, as fast."""
    if engine not in selected_engines(pytestconfig):
        pytest.skip(f"--pyrt-engine does not select {engine}")
    pytester.makeconftest(UNSERVED_CONFTEST)
    (pytester.path / "app").mkdir()
    (pytester.path / "app" / "index.html").write_text(UNSERVED_PAGE)
    pytester.makepyfile(test_unserved=UNSERVED_TESTS)
    result = run_project(pytester, "--pyrt-engine", engine)
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    taken = [float(seconds) for seconds in re.findall(r"@@ (\d+\.\d) s", out)]
    assert len(taken) == 3, out
    assert max(taken) < 10, f"a page that cannot work took {taken} s to fail"
    install = "`npm install pyodide@314.0.7 @pyscript/core@0.7.31`"
    result.stdout.fnmatch_lines(
        [
            "*test_my_page_without_node_modules*",
            "*PageNotServed: the page cannot start: the browser runtime it loads is not served",
            "*GET http://127.0.0.1:*/vendor/pyscript/core.js answered HTTP 503: "
            f"*/node_modules/@pyscript/core/dist is missing: run {install} in {pytester.path}, or point*",
            "*look in <rootdir>/node_modules*override the pyrt_node_modules fixture*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_a_pyodide_page_without_node_modules*",
            "*the page did not boot*",
            "*Pyodide is not served:",
            "*GET http://127.0.0.1:*/vendor/pyodide/pyodide.mjs answered HTTP 503: "
            f"*/node_modules/pyodide is missing: run {install} in {pytester.path}*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*test_my_page_on_a_server_without_web_dir*",
            "*PageNotServed: the page is not served: GET http://127.0.0.1:*/chat.html answered HTTP 404 Not*",
            "*serves your pages from the folder given with --web-dir DIR*",
        ]
    )


def code_blocks(document: Path, heading: str, language: str) -> list[str]:
    """The ``language`` code blocks of the section ``heading`` of a Markdown ``document``."""
    level = len(heading) - len(heading.lstrip("#"))
    blocks: list[str] = []
    inside = fenced = collecting = False
    for line in document.read_text().splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
            collecting = fenced and inside and line.strip() == f"```{language}"
            if collecting:
                blocks.append("")
        elif collecting:
            blocks[-1] += line
        elif not fenced and line.startswith("#"):
            if line.rstrip("\n") == heading:
                inside = True
            elif inside and len(line) - len(line.lstrip("#")) <= level:
                break
    return blocks


def test_the_readmes_own_page_works_as_shipped_and_the_docs_recipe_tests_it(
    pytester: pytest.Pytester,
) -> None:
    html, *_ = code_blocks(REPO / "README.md", "## Your own page", "html")
    app, *_ = code_blocks(REPO / "README.md", "## Your own page", "python")
    conftest, test = code_blocks(REPO / "docs" / "testing.md", "### Testing your own page", "python")
    (pytester.path / "site").mkdir()
    (pytester.path / "site" / "index.html").write_text(html)
    (pytester.path / "site" / "app.py").write_text(app)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "conftest.py").write_text(conftest)
    (pytester.path / "tests" / "test_site.py").write_text(test)
    result = run_project(pytester, "tests")
    result.assert_outcomes(passed=1)


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
