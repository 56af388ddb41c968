"""The one small interface the pyrt fixtures drive a browser through, and its two implementations.

A :class:`BrowserDriver` (one per engine per test session) opens a :class:`ContextDriver`: a group
of tabs sharing storage, guarded so nothing leaves localhost where the engine can intercept
requests, recording what its tabs print and fetch where it can. A context opens
:class:`PageDriver` tabs, and a tab can do what every engine can: go to a URL, write a document,
evaluate JavaScript (a function or an expression, promises awaited; JSON-like values back), reload,
idle, close. The pages of the plugin (:class:`~pyrt.pytest_plugin.pyodide_page.PyodidePage`, which
runs Python in the page and returns JSON) are built on these calls alone, so they work in every
engine.

- :class:`PlaywrightBrowser` (Chromium over CDP, Firefox over WebDriver BiDi): isolated contexts,
  request interception, console capture; :attr:`PageDriver.playwright` is the Playwright ``Page``.
- :class:`SeleniumBrowser` (WebKitGTK through classic WebDriver): one WebDriver session whose
  windows share one profile (give each test its own channel, ``share=`` and ``persist=`` names),
  no interception, no console. Asking for those raises
  :class:`~pyrt.pytest_plugin.engines.MissingCapability`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyrt.pytest_plugin.engines import (
    ENGINES,
    Engine,
    EngineUnavailable,
    MissingCapability,
    webkit_executable,
)

__all__ = [
    "Answer",
    "BrowserDriver",
    "ContextDriver",
    "PageDriver",
    "PlaywrightBrowser",
    "Records",
    "SeleniumBrowser",
    "as_driver",
    "launch_webkit",
]

_FUNCTION = re.compile(r"^\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>)")


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP response as far as the engine tells: the request's ``method`` and ``url``, the
    ``status`` and its ``status_text``; :meth:`text` reads the body when asked (it may be gone)."""

    method: str
    url: str
    status: int
    status_text: str = ""
    body: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)

    def text(self) -> str:
        """The body, or "" when the engine kept none (or the context is closed)."""
        try:
            return self.body()
        except Exception:
            return ""


@dataclass
class Records:
    """What the tabs of one context did (filled where the engine can tell): console lines,
    uncaught errors, requested URLs, requests blocked by the localhost guard, failed requests,
    and the answers of 400 or more (their bodies are read when needed)."""

    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    network_errors: list[str] = field(default_factory=list)
    error_answers: list[Answer] = field(default_factory=list)
    expected: list[str] | None = None  # while expect_blocked() runs
    blocked_urls: set[str] = field(default_factory=set)

    def blocked(self, what: str) -> None:
        (self.expected if self.expected is not None else self.blocked_requests).append(what)
        self.blocked_urls.add(what.split(" ", 1)[-1])


class PageDriver(ABC):
    """One tab."""

    engine: Engine
    closed: bool

    @property
    @abstractmethod
    def url(self) -> str: ...

    @abstractmethod
    def goto(self, url: str, *, wait_until: str = "load") -> Answer | None:
        """Navigate and wait for the ``load`` event (Playwright engines also take
        ``domcontentloaded``...); the document's answer, or None where the engine does not tell
        (WebKit through classic WebDriver)."""

    @abstractmethod
    def write(self, html: str) -> None:
        """Replace the document with ``html`` (its origin stays the current URL's); scripts run."""

    @abstractmethod
    def evaluate(self, script: str, arg: Any = None) -> Any:
        """Evaluate ``script`` in the page: a function (called with ``arg``) or an expression;
        a promise is awaited; the JSON-like value comes back. A thrown error raises here."""

    @abstractmethod
    def reload(self) -> None:
        """Reload the document (``pagehide`` runs)."""

    def resources(self) -> list[str]:
        """The URLs the document loaded or tried to (the Resource Timing entries; in every
        engine, without their status: WebKitGTK gives none)."""
        names = self.evaluate('() => performance.getEntriesByType("resource").map((entry) => entry.name)')
        return [str(name) for name in names or ()]

    @abstractmethod
    def wait_for_timeout(self, ms: float) -> None:
        """Idle ``ms`` milliseconds (in Playwright: inside Playwright, so its events run)."""

    @abstractmethod
    def close(self) -> None:
        """Close the tab as a user does: ``pagehide`` runs."""

    def crash(self) -> None:
        """Kill the tab's renderer: nothing runs, the browser releases what the tab held."""
        self.engine.require("crash")

    @property
    def playwright(self) -> Any:
        """Playwright's ``Page`` for this tab (Chromium, Firefox)."""
        self.engine.require("playwright", "drive this page with evaluate() or its WebDriver")
        raise AssertionError("unreachable")

    @property
    def webdriver(self) -> Any:
        """The Selenium WebDriver, switched to this tab (WebKit only)."""
        raise MissingCapability(self.engine, "webdriver", "it is driven by Playwright: use .playwright")


class ContextDriver(ABC):
    """A group of tabs sharing storage (a Playwright context; in WebKit, the session's profile)."""

    engine: Engine
    records: Records

    @abstractmethod
    def new_page(self, *, hidden: bool = False) -> PageDriver:
        """A new tab; ``hidden=True``: a background tab (``document.hidden``; WebKit only)."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def playwright(self) -> Any:
        """Playwright's ``BrowserContext`` (Chromium, Firefox)."""
        self.engine.require("playwright")
        raise AssertionError("unreachable")


class BrowserDriver(ABC):
    """One running browser of one engine."""

    engine: Engine

    @abstractmethod
    def open_context(
        self, *, allow: Sequence[str] = (), context_args: Mapping[str, Any] | None = None
    ) -> ContextDriver:
        """A new guarded context; ``allow``: URL prefixes outside localhost it may reach;
        ``context_args``: Playwright's ``new_context`` options (WebKit: ``viewport`` only)."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    def version(self) -> str:
        return ""


# -- Playwright: Chromium and Firefox ------------------------------------------------------------------


class PlaywrightPage(PageDriver):
    def __init__(self, engine: Engine, page: Any) -> None:
        self.engine = engine
        self._page = page
        self.closed = False

    @property
    def url(self) -> str:
        return str(self._page.url)

    @property
    def playwright(self) -> Any:
        return self._page

    def goto(self, url: str, *, wait_until: str = "load") -> Answer | None:
        response = self._page.goto(url, wait_until=wait_until)
        return None if response is None else _answer(response)

    def write(self, html: str) -> None:
        self._page.set_content(html)

    def evaluate(self, script: str, arg: Any = None) -> Any:
        return self._page.evaluate(script, arg)

    def reload(self) -> None:
        self._page.reload()

    def wait_for_timeout(self, ms: float) -> None:
        self._page.wait_for_timeout(ms)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._page.close(run_before_unload=False)

    def crash(self) -> None:
        self.engine.require("crash")
        self.closed = True
        with self._page.expect_event("crash", timeout=10_000), contextlib.suppress(Exception):
            self._page.goto("chrome://crash", timeout=10_000)  # fails: the renderer is gone


def leaves_localhost(allow: Sequence[str] = ()) -> re.Pattern[str]:
    """A pattern matching every URL outside localhost and outside the ``allow`` prefixes.

    The pattern is valid in Python and in JavaScript: Playwright hands it to the browser, which
    then pauses only the requests that match.
    """
    allowed = "".join(f"|{re.escape(prefix)}" for prefix in allow)
    return re.compile(f"^(?!{_LOCAL}{allowed})")


_LOCAL = (
    r"(?:https?|wss?)://(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?(?:[/?#]|$)|(?:data|blob|about):"
)


class PlaywrightContext(ContextDriver):
    """A Playwright context that blocks and records every request leaving localhost, and records
    the console, uncaught errors, requests and failures of all its tabs."""

    def __init__(
        self, engine: Engine, browser: Any, allow: Sequence[str], context_args: Mapping[str, Any] | None
    ) -> None:
        self.engine = engine
        self.records = Records()
        self._context = browser.new_context(**dict(context_args or {}))
        guard = leaves_localhost(allow)
        self._context.route(guard, self._block)
        self._context.route_web_socket(guard, self._block_websocket)
        self._context.on("console", self._on_console)
        self._context.on("weberror", self._on_error)
        self._context.on("request", self._on_request)
        self._context.on("response", self._on_response)
        self._context.on("requestfailed", self._on_failed)

    @property
    def playwright(self) -> Any:
        return self._context

    def new_page(self, *, hidden: bool = False) -> PageDriver:
        if hidden:
            self.engine.require("hidden_pages", "every page of a headless Playwright browser is visible")
        return PlaywrightPage(self.engine, self._context.new_page())

    def close(self) -> None:
        self._context.close()

    def _block(self, route: Any) -> None:
        self.records.blocked(f"{route.request.method} {route.request.url}")
        route.abort("blockedbyclient")

    def _block_websocket(self, socket: Any) -> None:
        self.records.blocked(f"WebSocket {socket.url}")
        socket.close(code=1008, reason="blocked by the pyrt test harness: outside localhost")

    def _on_console(self, message: Any) -> None:
        self.records.console.append(f"[{message.type}] {message.text}")

    def _on_error(self, error: Any) -> None:
        self.records.page_errors.append(str(error.error))

    def _on_request(self, request: Any) -> None:
        self.records.requests.append(request.url)

    def _on_response(self, response: Any) -> None:
        if response.status >= 400:
            self.records.network_errors.append(f"{response.status} {response.request.method} {response.url}")
            self.records.error_answers.append(_answer(response))

    def _on_failed(self, request: Any) -> None:
        reason = request.failure or "failed"
        blocked = reason.startswith("net::ERR_BLOCKED_BY_CLIENT") or request.url in self.records.blocked_urls
        if not blocked:  # listed with the blocked requests (Firefox words the failure its own way)
            self.records.network_errors.append(f"{reason} {request.method} {request.url}")


def _answer(response: Any) -> Answer:
    """A Playwright ``Response`` as an :class:`Answer`; its body is read only when asked."""
    return Answer(
        method=str(response.request.method),
        url=str(response.url),
        status=int(response.status),
        status_text=str(response.status_text or ""),
        body=lambda: str(response.text()),
    )


class PlaywrightBrowser(BrowserDriver):
    """A Playwright ``Browser`` (Chromium or Firefox). Attributes it does not define come from the
    Playwright browser (``pyrt_browser.new_context()`` works as before)."""

    def __init__(self, browser: Any, engine: Engine | None = None) -> None:
        self.browser = browser
        self.engine = engine or ENGINES.get(browser.browser_type.name, ENGINES["chromium"])

    def open_context(
        self, *, allow: Sequence[str] = (), context_args: Mapping[str, Any] | None = None
    ) -> ContextDriver:
        return PlaywrightContext(self.engine, self.browser, allow, context_args)

    def close(self) -> None:
        self.browser.close()

    @property
    def version(self) -> str:
        return str(self.browser.version)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.browser, name)


def as_driver(browser: Any) -> BrowserDriver:
    """A :class:`BrowserDriver` for ``browser``: itself, or a Playwright ``Browser`` wrapped."""
    return browser if isinstance(browser, BrowserDriver) else PlaywrightBrowser(browser)


# -- Selenium: WebKitGTK -------------------------------------------------------------------------------------

# WebDriver's execute_async_script runs this with the script text in place of SCRIPT; the driver
# compiles it (a page's CSP does not apply). Errors come back as values: WebDriver's own error
# for a rejected promise loses the message in some drivers.
_ASYNC_WRAPPER = """
const done = arguments[arguments.length - 1];
const arg = arguments[0];
Promise.resolve().then(() => (SCRIPT)).then(
  (value) => done({ ok: true, value: value === undefined ? null : value }),
  (error) => done({ ok: false, error: String((error && error.stack) || error) + "" }));
"""


class SeleniumPage(PageDriver):
    def __init__(self, browser: SeleniumBrowser, handle: str) -> None:
        self.engine = browser.engine
        self._browser = browser
        self.handle = handle
        self.closed = False

    @property
    def webdriver(self) -> Any:
        return self._browser.focus(self.handle)

    @property
    def url(self) -> str:
        return str(self.webdriver.current_url)

    def goto(self, url: str, *, wait_until: str = "load") -> Answer | None:
        self.webdriver.get(url)  # WebDriver waits for the load event, and tells no status
        return None

    def write(self, html: str) -> None:
        self.webdriver.execute_script(
            "document.open(); document.write(arguments[0]); document.close();", html
        )

    def evaluate(self, script: str, arg: Any = None) -> Any:
        body = f"({script})(arg)" if _FUNCTION.match(script) else f"({script})"
        driver = self.webdriver
        result = driver.execute_async_script(_ASYNC_WRAPPER.replace("SCRIPT", body), arg)
        if not isinstance(result, dict) or "ok" not in result:
            raise RuntimeError(f"WebKit returned {result!r} for {script[:80]!r}")
        if not result["ok"]:
            raise RuntimeError(f"Error: {result['error']}")
        return _plain(result["value"])

    def reload(self) -> None:
        self.webdriver.refresh()

    def wait_for_timeout(self, ms: float) -> None:
        time.sleep(ms / 1000)  # nothing runs in the test thread for WebDriver: a plain pause

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._browser.close_window(self.handle)


def _plain(value: Any) -> Any:
    """JSON-like values only (WebDriver may return element references)."""
    return json.loads(json.dumps(value, default=str))


class SeleniumContext(ContextDriver):
    """Tabs of the WebDriver session: one profile for all (no isolation, no guard, no console)."""

    def __init__(self, browser: SeleniumBrowser, context_args: Mapping[str, Any] | None) -> None:
        self.engine = browser.engine
        self.records = Records()
        self._browser = browser
        self._pages: list[SeleniumPage] = []
        args = dict(context_args or {})
        args.pop("bypass_csp", None)  # pyrt's own pages need none: their document has no policy
        self._viewport = args.pop("viewport", None)
        args.pop("service_workers", None)
        if args:
            raise MissingCapability(
                self.engine, "contexts", f"context options {sorted(args)} are Playwright's"
            )

    def new_page(self, *, hidden: bool = False) -> PageDriver:
        page = SeleniumPage(self._browser, self._browser.new_window("tab" if hidden else "window"))
        if self._viewport:
            page.webdriver.set_window_size(self._viewport["width"], self._viewport["height"])
        self._pages.append(page)
        return page

    def close(self) -> None:
        for page in self._pages:
            with contextlib.suppress(Exception):
                page.close()


class SeleniumBrowser(BrowserDriver):
    """One WebDriver session of WebKitGTK's MiniBrowser on a display of its own; tabs are windows."""

    def __init__(self, webdriver: Any, engine: Engine, stop: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.webdriver = webdriver
        self._stop = stop
        # The first window stays open: closing the last window ends the session.
        self._home: str = webdriver.current_window_handle
        self._current: str = self._home
        webdriver.set_script_timeout(600)

    @property
    def version(self) -> str:
        return str(self.webdriver.capabilities.get("browserVersion", ""))

    def focus(self, handle: str) -> Any:
        if self._current != handle:
            self.webdriver.switch_to.window(handle)
            self._current = handle
        return self.webdriver

    def new_window(self, kind: str = "window") -> str:
        """A new top-level window (visible), or a ``"tab"`` (in the background: hidden)."""
        self.webdriver.switch_to.new_window(kind)
        handle = str(self.webdriver.current_window_handle)
        self._current = handle
        return handle

    def close_window(self, handle: str) -> None:
        self.focus(handle).close()
        self.webdriver.switch_to.window(self._home)
        self._current = self._home

    def open_context(
        self, *, allow: Sequence[str] = (), context_args: Mapping[str, Any] | None = None
    ) -> ContextDriver:
        return SeleniumContext(self, context_args)

    def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                self.webdriver.quit()
        finally:
            self._stop()


def _start_xvfb(timeout: float = 15.0) -> tuple[subprocess.Popen[bytes], str]:
    """A virtual display of its own: ``Xvfb -displayfd`` tells which number it took."""
    if not _which("Xvfb"):
        raise EngineUnavailable("WebKitGTK needs a display and there is no Xvfb (apt-get install xvfb xauth)")
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(write)
    number = b""
    deadline = time.monotonic() + timeout
    try:
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read], [], [], left)[0]:
                proc.kill()
                raise EngineUnavailable(f"Xvfb did not report a display within {timeout:g} s")
            chunk = os.read(read, 16)
            if not chunk:
                proc.kill()
                raise EngineUnavailable(f"Xvfb exited with {proc.wait()} before reporting a display")
            number += chunk
    finally:
        os.close(read)
    return proc, ":" + number.decode().strip()


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def launch_webkit(*, headed: bool = False) -> SeleniumBrowser:
    """WebKitGTK's MiniBrowser through ``WebKitWebDriver`` and Selenium, on an Xvfb display of its
    own (``headed=True``: on ``$DISPLAY``). Raises :class:`EngineUnavailable` with the reason."""
    engine = ENGINES["webkit"]
    try:
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service
    except ImportError:
        raise EngineUnavailable('WebKit is driven through Selenium: pip install "pyrt[testing]"') from None
    binary = webkit_executable()
    driver_binary = _which("WebKitWebDriver")
    if not driver_binary:
        raise EngineUnavailable("no WebKitWebDriver (apt-get install webkit2gtk-driver)")
    xvfb: subprocess.Popen[bytes] | None = None
    env = dict(os.environ)
    if headed and env.get("DISPLAY"):
        pass
    else:
        xvfb, env["DISPLAY"] = _start_xvfb()
    env.setdefault("SE_AVOID_STATS", "true")

    def stop() -> None:
        if xvfb is not None:
            xvfb.terminate()
            try:
                xvfb.wait(5)
            except subprocess.TimeoutExpired:
                xvfb.kill()
                xvfb.wait()

    options = Options()
    options.binary_location = binary
    options.add_argument("--automation")  # without it, session creation hangs or fails to match
    service = Service(executable_path=driver_binary, env=env, log_output=subprocess.DEVNULL)
    try:
        with warnings.catch_warnings():  # Selenium's own deprecation, inside its constructor
            warnings.simplefilter("ignore", DeprecationWarning)
            session = webdriver.WebKitGTK(options=options, service=service)
    except Exception as exc:
        stop()
        raise EngineUnavailable(f"WebKitGTK did not start through {driver_binary}: {exc}") from None
    return SeleniumBrowser(session, engine, stop)
