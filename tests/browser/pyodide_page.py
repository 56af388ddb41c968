"""A Chromium page on the test server with Pyodide booted and the working-tree pyrt imported.

``PyodidePage.run(code)`` runs Python inside the page (top-level ``await`` allowed) and returns
the JSON-decoded value of the last expression. Failures raise :class:`PyodideError` with the
Python traceback, the page's console errors and uncaught exceptions.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route

RUNNER = r"""
import json, traceback
from pyodide.code import eval_code_async

_pyrt_test_namespaces = {}

async def _pyrt_test_run(code, ns_key):
    if ns_key:
        ns = _pyrt_test_namespaces.setdefault(ns_key, {"__name__": "__main__"})
    else:
        ns = {"__name__": "__main__"}
    try:
        value = await eval_code_async(code, ns)
    except BaseException:
        return json.dumps({"ok": False, "error": traceback.format_exc()})
    try:
        return json.dumps({"ok": True, "value": value})
    except (TypeError, ValueError) as exc:
        return json.dumps({"ok": False, "error": f"result is not JSON-able: {exc!r}: {value!r}"})
"""

RUN_JS = """
async ([code, nsKey, timeoutMs]) => {
  const run = window.pyodide.globals.get("_pyrt_test_run");
  let timer;
  try {
    return await Promise.race([
      run(code, nsKey),
      new Promise((_, reject) => {
        const message = `Python code did not finish within ${timeoutMs} ms`;
        timer = setTimeout(() => reject(new Error(message)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    run.destroy();
  }
}
"""


class PyodideError(AssertionError):
    """Python code inside the page failed; the message carries the page's diagnostics."""


class PyodidePage:
    """One browser context + page, booted on ``base_url + path``."""

    def __init__(self, browser: Browser, base_url: str, path: str = "/pyodide.html") -> None:
        self.base_url = base_url
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(base_url))
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        self.foreign_requests: list[str] = []
        self.context: BrowserContext = browser.new_context()
        self.context.route(self._is_foreign, self._block)
        self.page: Page = self.context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        started = time.perf_counter()
        self.page.goto(base_url + path)
        self.timings: dict[str, float] = self.page.evaluate("window.pyodideReady")
        self.timings["totalMs"] = (time.perf_counter() - started) * 1000
        self.page.evaluate("(code) => window.pyodide.runPythonAsync(code)", RUNNER)

    def _is_foreign(self, url: str) -> bool:
        return not (url.startswith(self.origin + "/") or url.startswith(("data:", "blob:")))

    def _block(self, route: Route) -> None:
        self.foreign_requests.append(route.request.url)
        route.abort()

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {message.text}")

    def diagnostics(self) -> str:
        lines = ["--- page console (last 40) ---", *self.console[-40:]]
        if self.page_errors:
            lines += ["--- uncaught page errors ---", *self.page_errors]
        if self.foreign_requests:
            lines += ["--- blocked foreign requests ---", *self.foreign_requests]
        return "\n".join(lines)

    def run(self, code: str, *, ns: str | None = None, timeout: float = 30.0) -> Any:
        """Run ``code`` in Pyodide; return the JSON value of its last expression.

        Each call gets a fresh namespace unless ``ns`` names one to keep between calls.
        """
        try:
            raw = self.page.evaluate(RUN_JS, [code, ns, int(timeout * 1000)])
        except Exception as exc:
            raise PyodideError(f"{exc}\n{self.diagnostics()}") from None
        result = json.loads(raw)
        if not result["ok"]:
            error = result["error"]
            raise PyodideError(f"Python failed inside the page:\n{error}\n{self.diagnostics()}")
        return result["value"]

    def wait_for(self, code: str, *, ns: str | None = None, timeout: float = 10.0) -> Any:
        """Evaluate ``code`` (an expression) until it is truthy, for at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(code, ns=ns)
            if value:
                return value
            if time.monotonic() > deadline:
                last = f"{code!r} stayed falsy for {timeout}s (last: {value!r})"
                raise PyodideError(f"{last}\n{self.diagnostics()}")
            self.page.wait_for_timeout(20)

    def close(self) -> None:
        self.context.close()
