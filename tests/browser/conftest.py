"""Browser tier: browsers, servers and pages come from pyrt's pytest plugin. The reliability core
runs in Chromium, Firefox and WebKit (``pyrt_engine`` in pyproject.toml); modules and tests outside
it say ``pytest.mark.pyrt_engines("chromium")``, with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess


@pytest.fixture(scope="session")
def py(pyrt_browser: Any, pyrt_server: ServerProcess) -> Iterator[PyodidePage]:
    """A page with Pyodide and pyrt on the session's server, shared by every test of one engine
    (boots once per engine: a boot costs seconds, in WebKit tens of them on a busy machine). Tests
    keep their state in namespaces of their own (``ns=``) and undo what they change in the page."""
    with PyodidePage(pyrt_browser, pyrt_server.url) as page:
        yield page
