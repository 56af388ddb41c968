"""A browser context that may only talk to localhost, and what its pages did.

:class:`AppPage` opens a fresh context (its own cookies, storage and cache, where the engine has
contexts) with one page, through the engine's :class:`~pyrt.pytest_plugin.driver.BrowserDriver`,
and:

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

In WebKit (driven through classic WebDriver) there is no request interception and no console:
nothing is blocked or recorded, the diagnostics say so, and asking for those records (or for
Playwright's :attr:`~AppPage.page`) raises :class:`~pyrt.pytest_plugin.engines.MissingCapability`,
which the plugin reports as a skip naming the engine. :meth:`AppPage.evaluate` works everywhere.
"""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pyrt.pytest_plugin.driver import Answer, PageDriver, Records, as_driver, leaves_localhost
from pyrt.pytest_plugin.engines import Engine
from pyrt.pytest_plugin.reporting import REGISTRY, tail

__all__ = ["AppPage", "PageNotServed", "leaves_localhost"]

CONSOLE_LINES = 40


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

    def __init__(self, records: Records) -> None:
        self.console = len(records.console)
        self.errors = len(records.page_errors)
        self.blocked = len(records.blocked_requests)
        self.network = len(records.network_errors)


class AppPage:
    """``AppPage(browser, url)`` opens ``url`` (any page: PyScript, plain JS) in a guarded context.

    ``browser`` is ``pyrt_browser`` (a :class:`~pyrt.pytest_plugin.driver.BrowserDriver`) or a
    Playwright ``Browser``. ``allow`` lists URL prefixes outside localhost the page may reach;
    ``context_args`` go to Playwright's ``browser.new_context`` (``viewport=...``,
    ``service_workers=...``; WebKit takes ``viewport`` only). ``hidden=True`` opens it as a
    background tab (``document.hidden``), where the engine has those (WebKit). Drive the page with
    :meth:`evaluate` in any engine, or with Playwright through :attr:`page` and :attr:`context`
    (Chromium, Firefox); :meth:`close` (or ``with``) ends it.
    """

    def __init__(
        self,
        browser: Any,
        url: str | None = None,
        *,
        allow: Sequence[str] = (),
        context_args: Mapping[str, Any] | None = None,
        wait_until: str = "load",
        hidden: bool = False,
    ) -> None:
        self.browser = as_driver(browser)
        self.engine: Engine = self.browser.engine
        self.origin = _origin(url) if url else ""
        self.closed = False
        self._context = self.browser.open_context(allow=allow, context_args=context_args)
        self._records = self._context.records
        self.driver: PageDriver = self._context.new_page(hidden=hidden)
        REGISTRY.track(self)
        if url:
            try:
                self.check_served(url, self.goto(url, wait_until=wait_until))
            except BaseException:
                self.close()
                raise

    # -- driving -------------------------------------------------------------------------------------
    def goto(self, url: str, *, wait_until: str = "load") -> Answer | None:
        """Navigate the page; ``wait_until`` is Playwright's (``load``, ``domcontentloaded``...).
        Returns the document's answer, or None where the engine does not tell (WebKit)."""
        self.origin = self.origin or _origin(url)
        return self.driver.goto(url, wait_until=wait_until)

    def evaluate(self, script: str, arg: Any = None) -> Any:
        """Evaluate JavaScript in the page, in any engine: a function (called with ``arg``) or
        an expression; a promise is awaited; its JSON-like value comes back."""
        return self.driver.evaluate(script, arg)

    def new_tab(self, *, hidden: bool = False) -> PageDriver:
        """Another tab of this context (same storage, Web Locks, ``BroadcastChannel``);
        ``hidden=True``: in the background, where the engine has such pages (WebKit)."""
        return self._context.new_page(hidden=hidden)

    @property
    def page(self) -> Any:
        """Playwright's ``Page`` (Chromium, Firefox)."""
        return self.driver.playwright

    @property
    def context(self) -> Any:
        """Playwright's ``BrowserContext`` (Chromium, Firefox)."""
        return self._context.playwright

    def check_served(self, url: str, response: Answer | None = None) -> None:
        """Raise :class:`PageNotServed` when the page at ``url`` (its navigation ``response``, as
        :meth:`goto` returns it) cannot work: it answered 400 or more, or its runtime under
        ``/vendor/`` answered 503 (not installed). Opening a page calls it; call it after your own
        :meth:`goto`. Where the engine tells no status (WebKit), the local server is asked again
        from here."""
        __tracebackhide__ = True
        if response is None and not self.engine.has("intercept"):
            response = _ask(url)
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
        the server looks), each with what the server said. Where the engine records no answers
        (WebKit), the page's own list of what it loaded is asked of the local server again."""
        answers: list[Answer]
        if self.engine.has("intercept"):
            answers = list(self._records.error_answers)
        else:
            try:
                urls = dict.fromkeys(url for url in self.driver.resources() if _vendor(url))
            except Exception:  # the page is gone or between documents: nothing to tell
                urls = {}
            answers = [answer for url in urls if (answer := _ask(url, "HEAD")) is not None]
        return [
            f"GET {answer.url} answered HTTP 503: {_first_line(_body(answer))}"
            for answer in answers
            if answer.status == 503 and _vendor(answer.url)
        ]

    # -- what the pages did ----------------------------------------------------------------------------
    @property
    def console(self) -> list[str]:
        self.engine.require("console")
        return self._records.console

    @property
    def page_errors(self) -> list[str]:
        self.engine.require("console")
        return self._records.page_errors

    @property
    def requests(self) -> list[str]:
        self.engine.require("intercept")
        return self._records.requests

    @property
    def blocked_requests(self) -> list[str]:
        self.engine.require("intercept")
        return self._records.blocked_requests

    @property
    def network_errors(self) -> list[str]:
        self.engine.require("intercept")
        return self._records.network_errors

    @contextlib.contextmanager
    def expect_blocked(self) -> Iterator[list[str]]:
        """Requests blocked inside the block are expected (a page that must cope without its
        CDN): they go to the yielded list, not to :attr:`blocked_requests`, and fail nothing.
        They are seen while the block makes Playwright calls (``run``, ``evaluate``...)."""
        self.engine.require("intercept", "it cannot block requests, so none can be expected")
        if self._records.expected is not None:
            raise RuntimeError("expect_blocked() blocks do not nest")
        expected: list[str] = []
        self._records.expected = expected
        try:
            yield expected
        finally:
            self._records.expected = None

    def diagnostics(self, since: object | None = None) -> str:
        """The console (last lines), uncaught errors, blocked requests and failed requests, after
        ``since`` (a :meth:`mark`; None: everything)."""
        records = self._records
        mark = since if isinstance(since, _Mark) else None
        console = records.console[mark.console if mark else 0 :]
        errors = records.page_errors[mark.errors if mark else 0 :]
        blocked = records.blocked_requests[mark.blocked if mark else 0 :]
        network = records.network_errors[mark.network if mark else 0 :]
        lines: list[str] = []
        if console:
            lines += [f"--- page console (last {CONSOLE_LINES}) ---", *tail(console, CONSOLE_LINES)]
        if errors:
            lines += ["--- uncaught errors ---", *tail(errors, 20)]
        if blocked:
            lines += ["--- requests that tried to leave localhost (blocked) ---", *tail(blocked, 20)]
        if network:
            lines += ["--- failed requests ---", *tail(network, 20)]
        if not self.engine.has("console") and since is None:
            lines.append(
                f"--- ({self.engine.label} through {self.engine.driver}: no console, no request log) ---"
            )
        return "\n".join(lines)

    def wait_for_timeout(self, timeout: float) -> None:
        """Idle ``timeout`` ms (inside Playwright, so page events and route handlers run)."""
        self.driver.wait_for_timeout(timeout)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._context.close()

    def __enter__(self) -> AppPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reporting (see pyrt.pytest_plugin.reporting) -----------------------------------------------
    @property
    def report_title(self) -> str:
        where = self.origin
        if not self.closed:
            with contextlib.suppress(Exception):
                where = self.driver.url
        return f"pyrt page {where} ({self.engine.name})"

    @property
    def finished(self) -> bool:
        return self.closed

    def mark(self) -> object:
        return _Mark(self._records)

    def report(self, since: object | None) -> str:
        return self.diagnostics(since)

    def violations(self, since: object | None) -> list[str]:
        mark = since if isinstance(since, _Mark) else None
        return self._records.blocked_requests[mark.blocked if mark else 0 :]


def _vendor(url: str) -> bool:
    return urlsplit(url).path.startswith("/vendor/")


def _ask(url: str, method: str = "GET") -> Answer | None:
    """The local server's answer to ``method url`` asked from here (a ``GET`` as the page made
    it; its body is asked again when read), or None for a URL outside localhost or no answer."""
    if leaves_localhost().match(url):
        return None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as answer:
            status, reason = int(answer.status), str(answer.reason or "")
    except urllib.error.HTTPError as refused:
        with refused:
            status, reason = int(refused.code), str(refused.reason or "")
    except OSError:
        return None
    return Answer(method="GET", url=url, status=status, status_text=reason)


def _body(response: Answer) -> str:
    """A response's text; when the browser kept none (a script that failed to load, or an engine
    that tells no bodies), the same GET asked again of the local server from here, or "" when
    that fails too."""
    text = response.text()
    if text or response.method != "GET" or leaves_localhost().match(response.url):
        return text
    try:
        with urllib.request.urlopen(response.url, timeout=5) as answer:
            return str(answer.read(4096).decode(errors="replace"))
    except urllib.error.HTTPError as refused:
        with refused:
            return str(refused.read(4096).decode(errors="replace"))
    except OSError:
        return ""


def _first_line(text: str, limit: int = 400) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
