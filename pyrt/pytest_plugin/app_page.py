"""A browser context that may only talk to localhost, and what its pages did.

:class:`AppPage` opens a fresh Playwright context (its own cookies, storage and cache) with one
page, and:

- blocks every HTTP request and WebSocket that tries to leave localhost (``127.0.0.0/8``,
  ``localhost``, ``[::1]``; ``data:``/``blob:`` stay local) and records it in
  :attr:`AppPage.blocked_requests`; the pytest plugin fails the test that caused one;
- records the console of every tab of the context, uncaught errors, every request, and responses
  of 400 or more and failed requests;
- puts all of that in :meth:`AppPage.diagnostics` and in the report of a failing test.

Requests to localhost are never intercepted, so they flow even while the test thread is not
inside a Playwright call (the sync API runs route handlers only then).
"""

from __future__ import annotations

import contextlib
import re
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

__all__ = ["AppPage", "leaves_localhost"]

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
                self.goto(url, wait_until=wait_until)
            except BaseException:
                self.close()
                raise

    def goto(self, url: str, *, wait_until: str = "load") -> Response | None:
        """Navigate the page; ``wait_until`` is Playwright's (``load``, ``domcontentloaded``...)."""
        self.origin = self.origin or _origin(url)
        return self.page.goto(url, wait_until=wait_until)  # type: ignore[arg-type]

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
