"""Drive system Chromium for the client benchmarks (Playwright, sync API).

The launch flags and the binary are those of the pytest plugin (pyrt/pytest_plugin/chromium.py:
``PYRT_CHROMIUM`` picks another binary, empty for Playwright's own Chromium), plus precise memory
figures.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from pyrt.pytest_plugin.chromium import launch_options

EXTRA_FLAGS = ("--enable-precise-memory-info",)


class Unavailable(Exception):
    """A contender that does not exist yet (its pyrt class is missing)."""


class ContenderError(RuntimeError):
    """A contender failed inside the page."""


class Chromium:
    """One browser for the whole run; every page gets its own fresh context (cold caches)."""

    def __init__(self) -> None:
        self._pw: Playwright | None = None
        self.browser: Browser | None = None

    def __enter__(self) -> Chromium:
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(**launch_options(extra_flags=EXTRA_FLAGS))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.browser is not None:
            self.browser.close()
        if self._pw is not None:
            self._pw.stop()

    @property
    def version(self) -> str:
        assert self.browser is not None
        return self.browser.version

    def new_page(self) -> tuple[BrowserContext, Page]:
        assert self.browser is not None
        context = self.browser.new_context()
        page = context.new_page()
        return context, page


class BenchPage:
    """The PyScript bench page: raw JS contenders in ``benchJs``, Python ones in ``benchPy``.
    ``path``: another page with the same ``benchPy`` entry point, ready when ``ready`` is true."""

    def __init__(
        self,
        chromium: Chromium,
        base_url: str,
        boot_timeout: float = 120.0,
        path: str = "/bench.html",
        ready: str = "window.benchPyReady === true && window.benchJsReady === true",
    ) -> None:
        self.context, self.page = chromium.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(f"[{msg.type}] {msg.text}"))
        self.page.goto(base_url + path)
        try:
            self.page.wait_for_function(ready, timeout=boot_timeout * 1000)
        except Exception as exc:
            self.close()
            diagnostics = "\n".join(self.errors[-20:])
            raise ContenderError(f"the bench page did not boot: {exc}\n{diagnostics}") from None
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("HeapProfiler.enable")

    def js(self, name: str, *args: Any) -> Any:
        return self.page.evaluate(f"(args) => window.benchJs.{name}(...args)", list(args))

    def py(self, name: str, **kwargs: Any) -> Any:
        raw = self.page.evaluate("([n, a]) => window.benchPy(n, a)", [name, json.dumps(kwargs)])
        result = json.loads(raw)
        if result.get("ok"):
            return result["value"]
        if "unavailable" in result:
            raise Unavailable(result["unavailable"])
        raise ContenderError(f"{name} failed in the page:\n{result.get('error')}\n{self.errors[-5:]}")

    def memory(self) -> dict[str, Any]:
        """Python garbage collected, then a full JS GC; heap, wasm memory and live pyrt proxies."""
        snapshot = self.py("python_memory")
        self.cdp.send("HeapProfiler.collectGarbage")
        self.cdp.send("HeapProfiler.collectGarbage")
        usage = self.cdp.send("Runtime.getHeapUsage")
        snapshot["js_heap_bytes"] = int(usage["usedSize"])
        return snapshot

    def close(self) -> None:
        self.context.close()
