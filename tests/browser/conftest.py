"""Browser tier: Chromium, servers and pages come from pyrt's pytest plugin (the PYRT_CHROMIUM rule
picks the binary; see pyrt/pytest_plugin/chromium.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess


@pytest.fixture(scope="module")
def py(pyrt_browser: Browser, pyrt_server: ServerProcess) -> Iterator[PyodidePage]:
    """A page with Pyodide and pyrt on the session's server, shared by the tests of one module
    (boots once)."""
    with PyodidePage(pyrt_browser, pyrt_server.url) as page:
        yield page
