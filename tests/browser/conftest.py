"""Browser tier: system Chromium through pytest-playwright, Pyodide pages on the test server.

Set ``PYRT_CHROMIUM`` to another Chromium binary, or to an empty string to use Playwright's own
downloaded browser (``playwright install chromium``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser

from tests.browser.pyodide_page import PyodidePage
from tests.serverproc import ServerProcess

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--js-flags=--expose-gc",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    args = {**browser_type_launch_args, "args": CHROMIUM_FLAGS}
    executable = os.environ.get("PYRT_CHROMIUM", "/usr/bin/chromium")
    if executable:
        args["executable_path"] = executable
    return args


@pytest.fixture(scope="module")
def py(browser: Browser, server: ServerProcess) -> Iterator[PyodidePage]:
    """A page with Pyodide and pyrt, shared by the tests of one module (boots once)."""
    page = PyodidePage(browser, server.url)
    yield page
    page.close()


@pytest.fixture
def new_py(browser: Browser) -> Iterator[Callable[..., PyodidePage]]:
    """Open fresh Pyodide pages (on any server); all are closed after the test."""
    pages: list[PyodidePage] = []

    def open_page(base_url: str, path: str = "/pyodide.html") -> PyodidePage:
        page = PyodidePage(browser, base_url, path)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()
