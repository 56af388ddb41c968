"""A browser context that may only talk to localhost, and what its pages did.

:class:`AppPage` opens a fresh Playwright context (its own cookies, storage and cache) with one
page, and:

- blocks every HTTP request and WebSocket that tries to leave localhost (``127.0.0.0/8``,
  ``localhost``, ``[::1]``; ``data:``/``blob:`` stay local) and records it in
  :attr:`AppPage.blocked_requests`; the pytest plugin fails the test that caused one;
- records the console of every tab of the context, uncaught errors, every request, and responses
  of 400 or more and failed requests;
- puts all of that in :meth:`AppPage.diagnostics` and in the report of a failing test;
- fails at once with :class:`PageNotServed` when the page it opens cannot work: the page itself
  answered an error (a 404: the server was not given the page's folder with ``--web-dir``), or
  the browser runtime it loads from ``/vendor/`` is not installed where the server looks (the
  server's 503 says how to install it), instead of letting the test wait for a page that will
  never start.

Requests to localhost are never intercepted, so they flow even while the test thread is not
inside a Playwright call (the sync API runs route handlers only then).
"""

from __future__ import annotations

import contextlib
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    WebError,
    WebSocketRoute,
)

from pyrt.pytest_plugin.reporting import REGISTRY, tail

__all__ = ["AppPage", "PageNotServed", "leaves_localhost"]

_LOCAL = (
    r"(?:https?|wss?)://(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?(?:[/?#]|$)|(?:data|blob|about):"
)

CONSOLE_LINES = 40


def leaves_localhost(allow: Sequence[str] = ()) -> re.Pattern[str]:
    """A pattern matching every URL outside localhost and outside the ``allow`` prefixes.

    The pattern is valid in Python and in JavaScript: Playwright hands it to the browser, which
    then pauses only the requests that match.
    """
    allowed = "".join(f"|{re.escape(prefix)}" for prefix in allow)
    return re.compile(f"^(?!{_LOCAL}{allowed})")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


WEB_DIR_HINT = (
    "pyrt's server serves your pages from the folder given with --web-dir DIR (at /): start it with "
    "pyrt_start_server('--web-dir', 'DIR'), or return ['--web-dir', 'DIR'] from a pyrt_server_args "
    'fixture in conftest.py (docs/testing.md, "Testing your own page")'
)
NODE_MODULES_HINT = (
    "The servers the fixtures start look in <rootdir>/node_modules (or a pyrt checkout's); override "
    "the pyrt_node_modules fixture to name another folder."
)


class PageNotServed(AssertionError):
    """The page cannot work as served: the page itself answered an error status, or the browser
    runtime it loads is not installed where the server looks. The message says which, with what
    the server answered and the fix."""


class _Mark:
    __slots__ = ("blocked", "console", "errors", "network")

    def __init__(self, page: AppPage) -> None:
        self.console = len(page.console)
        self.errors = len(page.page_errors)
        self.blocked = len(page.blocked_requests)
        self.network = len(page.network_errors)


class AppPage:
    """``AppPage(browser, url)`` opens ``url`` (any page: PyScript, plain JS) in a guarded context.

    ``allow`` lists URL prefixes outside localhost the page may reach; ``context_args`` go to
    ``browser.new_context`` (``viewport=...``, ``service_workers=...``). Drive the page with
    Playwright through :attr:`page` and :attr:`context`; :meth:`close` (or ``with``) ends it.
    """

    def __init__(
        self,
        browser: Browser,
        url: str | None = None,
        *,
        allow: Sequence[str] = (),
        context_args: Mapping[str, Any] | None = None,
        wait_until: str = "load",
    ) -> None:
        self.origin = _origin(url) if url else ""
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        self.blocked_requests: list[str] = []
        self.network_errors: list[str] = []
        self.closed = False
        self._expected: list[str] | None = None
        self._error_responses: list[Response] = []  # their bodies are read when needed
        self.context: BrowserContext = browser.new_context(**dict(context_args or {}))
        guard = leaves_localhost(allow)
        self.context.route(guard, self._block)
        self.context.route_web_socket(guard, self._block_websocket)
        self.context.on("console", self._on_console)
        self.context.on("weberror", self._on_error)
        self.context.on("request", self._on_request)
        self.context.on("response", self._on_response)
        self.context.on("requestfailed", self._on_failed)
        self.page: Page = self.context.new_page()
        REGISTRY.track(self)
        if url:
            try:
                self.check_served(url, self.goto(url, wait_until=wait_until))
            except BaseException:
                self.close()
                raise

    def goto(self, url: str, *, wait_until: str = "load") -> Response | None:
        """Navigate the page; ``wait_until`` is Playwright's (``load``, ``domcontentloaded``...)."""
        self.origin = self.origin or _origin(url)
        return self.page.goto(url, wait_until=wait_until)  # type: ignore[arg-type]

    def check_served(self, url: str, response: Response | None) -> None:
        """Raise :class:`PageNotServed` when the page at ``url`` (its navigation ``response``)
        cannot work: it answered 400 or more, or its runtime under ``/vendor/`` answered 503
        (not installed). Opening a page calls it; call it after your own :meth:`goto`."""
        __tracebackhide__ = True
        if response is not None and response.status >= 400:
            said = _first_line(_body(response))
            said = "" if said == response.status_text else said  # Starlette's 404 says "Not Found"
            status = f"HTTP {response.status}" + (f" {response.status_text}" if response.status_text else "")
            hint = f"\n{WEB_DIR_HINT}" if response.status == 404 else ""
            raise PageNotServed(
                f"the page is not served: GET {url} answered {status}" + (f": {said}" if said else "") + hint
            )
        missing = self.runtime_missing()
        if missing:
            raise PageNotServed(
                "the page cannot start: the browser runtime it loads is not served\n"
                + "\n".join(missing)
                + f"\n{NODE_MODULES_HINT}"
            )

    def runtime_missing(self) -> list[str]:
        """``/vendor/`` requests of this context answered 503 (the runtime is not installed where
        the server looks), each with what the server said."""
        found: list[str] = []
        for response in self._error_responses:
            if response.status == 503 and urlsplit(response.url).path.startswith("/vendor/"):
                found.append(f"GET {response.url} answered HTTP 503: {_first_line(_body(response))}")
        return found

    # -- what the pages did ----------------------------------------------------------------------------
    def _blocked(self, what: str) -> None:
        (self._expected if self._expected is not None else self.blocked_requests).append(what)

    def _block(self, route: Route) -> None:
        self._blocked(f"{route.request.method} {route.request.url}")
        route.abort("blockedbyclient")

    def _block_websocket(self, socket: WebSocketRoute) -> None:
        self._blocked(f"WebSocket {socket.url}")
        socket.close(code=1008, reason="blocked by the pyrt test harness: outside localhost")

    @contextlib.contextmanager
    def expect_blocked(self) -> Iterator[list[str]]:
        """Requests blocked inside the block are expected (a page that must cope without its
        CDN): they go to the yielded list, not to :attr:`blocked_requests`, and fail nothing.
        They are seen while the block makes Playwright calls (``run``, ``evaluate``...)."""
        if self._expected is not None:
            raise RuntimeError("expect_blocked() blocks do not nest")
        expected: list[str] = []
        self._expected = expected
        try:
            yield expected
        finally:
            self._expected = None

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {message.text}")

    def _on_error(self, error: WebError) -> None:
        self.page_errors.append(str(error.error))

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_response(self, response: Response) -> None:
        if response.status >= 400:
            self.network_errors.append(f"{response.status} {response.request.method} {response.url}")
            self._error_responses.append(response)

    def _on_failed(self, request: Request) -> None:
        reason = request.failure or "failed"
        if not reason.startswith("net::ERR_BLOCKED_BY_CLIENT"):  # listed with the blocked requests
            self.network_errors.append(f"{reason} {request.method} {request.url}")

    def diagnostics(self, since: object | None = None) -> str:
        """The console (last lines), uncaught errors, blocked requests and failed requests, after
        ``since`` (a :meth:`mark`; None: everything)."""
        mark = since if isinstance(since, _Mark) else None
        console = self.console[mark.console if mark else 0 :]
        errors = self.page_errors[mark.errors if mark else 0 :]
        blocked = self.blocked_requests[mark.blocked if mark else 0 :]
        network = self.network_errors[mark.network if mark else 0 :]
        lines: list[str] = []
        if console:
            lines += [f"--- page console (last {CONSOLE_LINES}) ---", *tail(console, CONSOLE_LINES)]
        if errors:
            lines += ["--- uncaught errors ---", *tail(errors, 20)]
        if blocked:
            lines += ["--- requests that tried to leave localhost (blocked) ---", *tail(blocked, 20)]
        if network:
            lines += ["--- failed requests ---", *tail(network, 20)]
        return "\n".join(lines)

    def wait_for_timeout(self, timeout: float) -> None:
        """Idle ``timeout`` ms inside Playwright, so page events and route handlers run."""
        self.page.wait_for_timeout(timeout)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.context.close()

    def __enter__(self) -> AppPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reporting (see pyrt.pytest_plugin.reporting) -----------------------------------------------
    @property
    def report_title(self) -> str:
        return f"pyrt page {self.page.url if not self.closed else self.origin}"

    @property
    def finished(self) -> bool:
        return self.closed

    def mark(self) -> object:
        return _Mark(self)

    def report(self, since: object | None) -> str:
        return self.diagnostics(since)

    def violations(self, since: object | None) -> list[str]:
        mark = since if isinstance(since, _Mark) else None
        return self.blocked_requests[mark.blocked if mark else 0 :]


def _body(response: Response) -> str:
    """A response's text; when the browser kept none (a script that failed to load), the same
    GET asked again of the local server from here, or "" when that fails too."""
    try:
        text = response.text()
    except Exception:  # evicted, or the context is closed
        text = ""
    if text or response.request.method != "GET" or leaves_localhost().match(response.url):
        return text
    try:
        with urllib.request.urlopen(response.url, timeout=5) as answer:
            return str(answer.read(4096).decode(errors="replace"))
    except urllib.error.HTTPError as refused:
        return str(refused.read(4096).decode(errors="replace"))
    except OSError:
        return ""


def _first_line(text: str, limit: int = 400) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
