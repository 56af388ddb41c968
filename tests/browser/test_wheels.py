"""pyrt installs as a wheel inside Pyodide, offline: micropip from the served lock, then pyrt's wheel."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Route

from pyrt.server.assets import PackageZip
from tests.browser.pyodide_page import PyodidePage
from tests.serverproc import REPO, ServerProcess

SITE_PACKAGES = "/lib/python3.14/site-packages"


def working_tree_sources() -> dict[str, str]:
    package = REPO / "pyrt"
    return {
        path.relative_to(package).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in PackageZip(package).files()
    }


@pytest.fixture(scope="module")
def py(browser: Browser, server: ServerProcess) -> Iterator[PyodidePage]:
    """A page that installed pyrt with micropip from the server's wheel (booted once)."""
    page = PyodidePage(browser, server.url, "/install-micropip.html")
    yield page
    page.close()


def test_micropip_installs_the_served_wheel_built_from_the_working_tree(
    py: PyodidePage, server: ServerProcess
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
    assert not any(name.startswith("server/") for name in installed["sources"])
    assert py.timings["wheelUrl"].startswith(server.url + "/wheels/pyrt-")


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
    assert py.foreign_requests == []


def test_a_pyscript_page_lists_pyrt_in_packages(browser: Browser, server: ServerProcess) -> None:
    context = browser.new_context()
    foreign: list[str] = []

    def block(route: Route) -> None:
        foreign.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith((server.url + "/", "data:", "blob:")), block)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/install-pyscript.html")
        status = page.locator("#status[data-file]")
        deadline = time.monotonic() + 30
        while not status.count() and not errors:  # ready, or failed: whichever comes first
            assert time.monotonic() < deadline, "the PyScript page did not finish within 30 s"
            page.wait_for_timeout(50)
        assert errors == []
        assert status.get_attribute("data-file") == f"{SITE_PACKAGES}/pyrt/__init__.py"
        assert status.inner_text() == f"pyrt {__import__('pyrt').__version__} installed as a package"
        assert errors == []
        assert foreign == []
    finally:
        context.close()
