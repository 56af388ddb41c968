"""Pyodide and PyScript run under the server's CSP: 'wasm-unsafe-eval' is enough, no 'unsafe-eval'."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess

pytestmark = pytest.mark.pyrt_engines("chromium")  # outside the reliability core

VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_pyodide_boots_and_connects_under_the_policy_without_unsafe_eval(
    pyrt_new_page: Callable[..., PyodidePage], pyrt_server: ServerProcess
) -> None:
    page = pyrt_new_page(pyrt_server, "/pyodide.html")  # boots Pyodide on a page served with the policy
    response = page.page.request.get(pyrt_server.url + "/pyodide.html")
    policy = response.headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in policy
    assert "'unsafe-eval'" not in policy
    got = page.run(
        f"""
import asyncio, js
from pyodide.ffi import create_proxy
ws = js.WebSocket.new("{pyrt_server.ws_url}/ws", "pyrt.v1")
got = asyncio.get_running_loop().create_future()
proxy = create_proxy(lambda event: got.done() or got.set_result(event.data))
ws.addEventListener("message", proxy)
first = await asyncio.wait_for(got, 10)
ws.close(); proxy.destroy()
first
"""
    )
    assert '"type":"welcome"' in got
    assert not [line for line in page.console if "Content Security Policy" in line]


def test_a_pyscript_page_runs_under_the_policy(
    pyrt_new_page: Callable[..., PyodidePage], pyrt_server: ServerProcess
) -> None:
    page = pyrt_new_page(pyrt_server, "/pyodide.html")
    tab = page.context.new_page()
    tab.add_init_script(VIOLATIONS)
    console: list[str] = []
    tab.on("console", lambda message: console.append(message.text))
    tab.goto(pyrt_server.url + "/hello.html")
    tab.locator("#status").filter(has_text="running in Pyodide").wait_for(timeout=60_000)
    assert tab.evaluate("window.__cspViolations") == []
    assert not [line for line in console if "Content Security Policy" in line]
