"""Several tabs of one browser profile, each with Pyodide and pyrt: what ``share=`` is for.

:class:`Tabs` is one guarded context (the plugin's :class:`~pyrt.pytest_plugin.app_page.AppPage`),
in any engine: its pages share Web Locks, ``BroadcastChannel``, storage — and the browser's six
HTTP/1.1 connections per origin. :meth:`Tabs.open` boots one more tab as the plugin's Pyodide page
does (its boot page written into a response of the server), :meth:`Tabs.open_worker` one whose
Python runs in a PyScript worker; :meth:`Tab.run` runs Python in either.
:meth:`Tab.close` closes it as a user does (``pagehide`` runs); :meth:`Tab.crash` kills its
renderer (Chromium only: nothing runs).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.driver import PageDriver
from pyrt.pytest_plugin.pyodide_page import BOOT_PAGE, DOCUMENT_PATH, HOME, READY_JS, RUN_JS, RUNNER
from pyrt.pytest_plugin.waiting import wait_until
from tests.browser.worker_page import PAGE as WORKER_PAGE
from tests.browser.worker_page import READY_JS as WORKER_READY_JS
from tests.browser.worker_page import RUN_JS as WORKER_RUN_JS

__all__ = ["Tab", "TabError", "Tabs", "WorkerTab"]


class TabError(AssertionError):
    """Python inside a tab failed; the message carries the context's diagnostics."""


class Tab:
    """One tab of a :class:`Tabs` context."""

    RUN = RUN_JS

    def __init__(self, tabs: Tabs, page: PageDriver, number: int) -> None:
        self.tabs = tabs
        self.page = page
        self.number = number
        self.closed = False

    def run(self, code: str, *, ns: str | None = "tab", timeout: float = 30.0) -> Any:
        """Run ``code`` in this tab's Pyodide (namespace ``ns`` kept between calls); return the
        JSON value of its last expression."""
        try:
            raw = self.page.evaluate(self.RUN, [code, ns, int(timeout * 1000)])
        except Exception as exc:
            raise TabError(f"tab {self.number}: {exc}\n{self.tabs.diagnostics()}") from None
        result = json.loads(raw)
        if not result["ok"]:
            raise TabError(f"tab {self.number}: Python failed:\n{result['error']}\n{self.tabs.diagnostics()}")
        return result["value"]

    def wait_for(self, code: str, *, ns: str | None = "tab", timeout: float = 10.0) -> Any:
        what = f"tab {self.number}: {code!r}"
        return wait_until(lambda: self.run(code, ns=ns), timeout, what, page=self.page)

    def close(self) -> None:
        """Close the tab as a user does: ``pagehide`` and ``unload`` run."""
        self.closed = True
        self.page.close()

    def crash(self) -> None:
        """Kill the tab's renderer: no event runs; the browser releases what it held."""
        self.closed = True
        self.page.crash()


class WorkerTab(Tab):
    """A tab whose Python runs in a PyScript worker (:mod:`tests.browser.worker_page`)."""

    RUN = WORKER_RUN_JS


class Tabs(AppPage):
    """One guarded browser context whose tabs run Pyodide with pyrt (see the module docstring)."""

    def __init__(self, browser: Any, base_url: str, boot_timeout: float = 90.0) -> None:
        super().__init__(browser, context_args={"bypass_csp": True})
        self.base_url = base_url.rstrip("/")
        self.boot_timeout = boot_timeout
        base_path = urlsplit(self.base_url).path
        self._boot_page = (
            BOOT_PAGE.replace("__INDEX__", f"{base_path}/vendor/pyodide/")
            .replace("__ZIP__", f"{base_path}/pyrt.zip")
            .replace("__HOME__", HOME)
        )
        self.tabs: list[Tab] = []
        self.boot_seconds: list[float] = []
        self.driver.close()  # AppPage's first page: tabs are opened with open()

    def open(self) -> Tab:
        """Open one more tab and boot Pyodide and pyrt in it."""
        started = time.perf_counter()
        page = self.new_tab()
        page.goto(self.base_url + DOCUMENT_PATH)
        page.write(self._boot_page)
        try:
            page.evaluate(READY_JS, int(self.boot_timeout * 1000))
        except Exception as exc:
            raise TabError(f"tab {len(self.tabs)} did not boot: {exc}\n{self.diagnostics()}") from None
        page.evaluate("(code) => window.pyodide.runPythonAsync(code)", RUNNER)
        tab = Tab(self, page, len(self.tabs))
        self.tabs.append(tab)
        self.boot_seconds.append(time.perf_counter() - started)
        return tab

    def open_worker(self) -> Tab:
        """Open one more tab whose Python runs in a PyScript worker."""
        page = self.new_tab()
        page.goto(self.base_url + DOCUMENT_PATH)
        page.write(WORKER_PAGE)
        try:
            page.evaluate(WORKER_READY_JS, int(self.boot_timeout * 1000))
        except Exception as exc:
            raise TabError(f"the worker tab did not boot: {exc}\n{self.diagnostics()}") from None
        tab = WorkerTab(self, page, len(self.tabs))
        self.tabs.append(tab)
        return tab

    def idler(self) -> PageDriver:
        """A live tab's page, to idle in while waiting."""
        return next(tab.page for tab in self.tabs if not tab.closed)

    def live(self) -> list[Tab]:
        return [tab for tab in self.tabs if not tab.closed]

    @property
    def report_title(self) -> str:
        return f"pyrt tabs on {self.base_url}"
