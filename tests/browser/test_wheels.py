"""pyrt installs as a wheel inside Pyodide, offline: micropip from the served lock, then pyrt's wheel."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser

from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from pyrt.server.assets import PackageZip
from tests import REPO

pytestmark = pytest.mark.pyrt_engines("chromium")  # outside the reliability core

SITE_PACKAGES = "/lib/python3.14/site-packages"


def working_tree_sources() -> dict[str, str]:
    package = REPO / "pyrt"
    return {
        path.relative_to(package).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in PackageZip(package).files()
    }


@pytest.fixture(scope="module")
def py(pyrt_browser: Browser, pyrt_server: ServerProcess) -> Iterator[PyodidePage]:
    """A page that installed pyrt with micropip from the server's wheel (booted once)."""
    page = PyodidePage(pyrt_browser, pyrt_server.url, "/install-micropip.html")
    yield page
    page.close()


def test_micropip_installs_the_served_wheel_built_from_the_working_tree(
    py: PyodidePage, pyrt_server: ServerProcess
) -> None:
    installed = py.run(
        """
import hashlib, importlib.metadata, pathlib, pyrt, micropip
root = pathlib.Path(pyrt.__file__).parent
{
    "file": pyrt.__file__,
    "version": importlib.metadata.version("pyrt"),
    "listed": "pyrt" in micropip.list(),
    "sources": {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    },
}
"""
    )
    assert installed["file"] == f"{SITE_PACKAGES}/pyrt/__init__.py"
    assert installed["version"] == __import__("pyrt").__version__
    assert installed["listed"]
    assert installed["sources"] == working_tree_sources()
    assert not any(name.startswith(("server/", "pytest_plugin/")) for name in installed["sources"])
    assert py.timings["wheelUrl"].startswith(pyrt_server.url + "/wheels/pyrt-")


def test_the_client_imports_without_the_server_or_its_dependencies(py: PyodidePage) -> None:
    missing = py.run(
        """
import importlib.util, pyrt, pyrt.browser
[name for name in ("pyrt.server", "starlette", "uvicorn", "redis") if importlib.util.find_spec(name)]
"""
    )
    assert missing == []
    lock_and_wheels = [urlsplit(url).path for url in py.requests if url.endswith((".whl", ".json"))]
    assert "/vendor/pyodide/pyodide-lock.json" in lock_and_wheels
    assert any(path.startswith("/vendor/pyodide/micropip-") for path in lock_and_wheels)
    assert py.blocked_requests == []


def test_a_pyscript_page_lists_pyrt_in_packages(
    pyrt_open_page: Callable[..., AppPage], pyrt_server: ServerProcess
) -> None:
    app = pyrt_open_page(pyrt_server, "/install-pyscript.html")
    status = app.page.locator("#status[data-file]")
    wait_until(
        lambda: status.count() or app.page_errors,  # ready, or failed: whichever comes first
        30,
        "the PyScript page finished",
        page=app,
    )
    assert app.page_errors == []
    assert status.get_attribute("data-file") == f"{SITE_PACKAGES}/pyrt/__init__.py"
    assert status.inner_text() == f"pyrt {__import__('pyrt').__version__} installed as a package"
    assert app.blocked_requests == []
