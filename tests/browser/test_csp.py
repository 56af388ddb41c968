"""Pyodide and PyScript run under the server's CSP: 'wasm-unsafe-eval' is enough, no 'unsafe-eval'."""

from __future__ import annotations

from collections.abc import Callable

from tests.browser.pyodide_page import PyodidePage
from tests.serverproc import ServerProcess

VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_pyodide_boots_and_connects_under_the_policy_without_unsafe_eval(
    new_py: Callable[..., PyodidePage], server: ServerProcess
) -> None:
    page = new_py(server.url)  # boots Pyodide on /pyodide.html, served with the policy
    response = page.page.request.get(server.url + "/pyodide.html")
    policy = response.headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in policy
    assert "'unsafe-eval'" not in policy
    got = page.run(
        f"""
import asyncio, js
from pyodide.ffi import create_proxy
ws = js.WebSocket.new("{server.ws_url}/ws", "pyrt.v1")
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
    new_py: Callable[..., PyodidePage], server: ServerProcess
) -> None:
    page = new_py(server.url)
    tab = page.context.new_page()
    tab.add_init_script(VIOLATIONS)
    console: list[str] = []
    tab.on("console", lambda message: console.append(message.text))
    tab.goto(server.url + "/hello.html")
    tab.locator("#status").filter(has_text="running in Pyodide").wait_for(timeout=60_000)
    assert tab.evaluate("window.__cspViolations") == []
    assert not [line for line in console if "Content Security Policy" in line]
