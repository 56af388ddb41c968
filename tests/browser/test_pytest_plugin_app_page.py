"""AppPage: any page in a context that may only talk to localhost, with everything its tabs did on record."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser

from pyrt.pytest_plugin.app_page import AppPage, leaves_localhost
from pyrt.pytest_plugin.server_process import ServerProcess

pytestmark = pytest.mark.pyrt_engines("chromium")  # the plugin itself, in its default engine


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/pyodide.js",
        "http://10.0.0.1/",
        "wss://example.org/ws",
        "http://127.0.0.1.evil.example/",
        "http://localhost.evil.example:8000/",
        "https://user@example.org/",
    ],
)
def test_everything_outside_localhost_is_caught(url: str) -> None:
    assert leaves_localhost().match(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/pyrt.zip",
        "ws://127.0.0.1:41234/ws?cid=1",
        "http://localhost/",
        "https://localhost:8443",
        "ws://[::1]:9000/ws",
        "http://127.8.9.10:80/x",
        "data:text/plain,hi",
        "blob:http://127.0.0.1:8000/1234",
    ],
)
def test_localhost_stays_free(url: str) -> None:
    assert not leaves_localhost().match(url)


def test_allowed_prefixes_pass_and_nothing_else_does() -> None:
    guard = leaves_localhost(["https://fonts.example/css/"])
    assert not guard.match("https://fonts.example/css/inter.css")
    assert guard.match("https://fonts.example/other")


def test_a_pyscript_page_is_guarded_and_its_tabs_are_on_record(
    pyrt_open_page: Callable[..., AppPage], pyrt_server: ServerProcess
) -> None:
    # The server's CSP would refuse these requests before the network: bypass it to reach the guard.
    app = pyrt_open_page(pyrt_server, "/hello.html", context_args={"bypass_csp": True})
    status = app.page.locator("#status")
    status.filter(has_text="running in Pyodide").wait_for(timeout=60_000)
    assert f"pyrt {__import__('pyrt').__version__}" in status.inner_text()  # offline, no CDN:
    assert all(url.startswith(pyrt_server.url + "/") for url in app.requests)
    with app.expect_blocked() as blocked:
        outcome = app.page.evaluate(
            """async () => {
                const fetched = await fetch("https://cdn.example.invalid/x.js")
                    .then(() => "ok", () => "refused");
                const ws = new WebSocket("wss://push.example.invalid/ws");
                const closed = await new Promise((done) => { ws.onclose = (e) => done(e.code); });
                return [fetched, closed];
            }"""
        )
    assert outcome == ["refused", 1008]
    assert blocked == ["GET https://cdn.example.invalid/x.js", "WebSocket wss://push.example.invalid/ws"]
    tab = app.context.new_page()
    tab.goto(pyrt_server.url + "/no-such-page.html")
    tab.evaluate("console.error('from the second tab')")
    assert "[error] from the second tab" in app.console
    assert f"404 GET {pyrt_server.url}/no-such-page.html" in app.network_errors
    report = app.report(None)
    assert "--- page console" in report
    assert "--- failed requests ---" in report


def test_a_closed_page_is_finished_and_expect_blocked_does_not_nest(
    pyrt_browser: Browser, pyrt_server: ServerProcess
) -> None:
    with AppPage(pyrt_browser, pyrt_server.url + "/hello.html", wait_until="domcontentloaded") as app:
        assert not app.finished
        with app.expect_blocked(), pytest.raises(RuntimeError, match="do not nest"), app.expect_blocked():
            pass
    assert app.finished
