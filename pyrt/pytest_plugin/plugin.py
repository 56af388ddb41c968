"""The pytest plugin (entry point ``pyrt`` in the ``pytest11`` group): fixtures for testing real-time
pages built on pyrt, in real browsers (Chromium and Firefox through Playwright, WebKitGTK through
Selenium), against pyrt's real server.

Importing this module costs next to nothing and needs only pytest: every fixture imports what it
uses (Playwright, the server) when a test asks for it, and says what to install when that is
missing (``pip install "pyrt[testing]"``). ``pytest -p no:pyrt`` turns the plugin off.

Fixtures (docs/testing.md has the whole story):

========================  ========  =================================================================
``pyrt_server``           session   pyrt's server with its default settings (plus ``pyrt_server_args``)
``pyrt_start_server``     function  start servers with options (``redis=True``: on ``pyrt_redis``)
``pyrt_redis``            session   a throw-away ``redis-server`` (none installed: skips; in CI fails)
``pyrt_proxy``            function  a chaos proxy in front of ``pyrt_server``
``pyrt_start_proxy``      function  a chaos proxy in front of any server
``pyrt_engine``           session   the engine of this test (``--pyrt-engine``; tests are parametrized)
``pyrt_browser``          session   the engine's browser (one per engine per session)
``pyrt_page``             function  a Pyodide page on ``pyrt_server`` with pyrt and ``pyrt_page_files``
``pyrt_new_page``         function  more Pyodide pages, on any server or proxy, with any files
``pyrt_open_page``        function  your own pages (PyScript...) in the same guarded browser context
``pyrt_channel``          function  a channel name no other test uses (the session's server is shared)
``pyrt_server_args``      session   override: options of ``pyrt_server``
``pyrt_node_modules``     session   override: where Pyodide is installed (npm)
``pyrt_page_files``       function  override: your Python files for ``pyrt_page``/``pyrt_new_page``
========================  ========  =================================================================

When a test fails, its report gets one section per server, proxy and page alive during it: what
each logged, printed or did during that test. A test whose page tried to reach anything outside
localhost fails, naming the requests.

Engines: ``--pyrt-engine chromium,firefox,webkit`` (or the ``pyrt_engine`` ini option; default
``chromium``) runs every test that uses a browser fixture once per engine (ids ``[chromium]``...).
``@pytest.mark.pyrt_engines("chromium")`` limits a test or module to the engines it can run in.
An engine that cannot start skips its tests with the reason, except in CI (``CI=true``), where
they fail. Asking an engine for what it cannot do (``page.page`` in WebKit, a tab crash outside
Chromium) skips the test, naming the engine and the capability.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import pytest

from pyrt.pytest_plugin.reporting import REGISTRY

if TYPE_CHECKING:
    from pyrt.pytest_plugin.app_page import AppPage
    from pyrt.pytest_plugin.driver import BrowserDriver
    from pyrt.pytest_plugin.engines import Engine
    from pyrt.pytest_plugin.proxy import ChaosProxy
    from pyrt.pytest_plugin.pyodide_page import PyodidePage
    from pyrt.pytest_plugin.redis_process import RedisServer
    from pyrt.pytest_plugin.server_process import ServerProcess

INSTALL = 'pip install "pyrt[testing]"'
Files = Sequence[str | Path] | Mapping[str, str | Path]


class HasUrl(Protocol):
    """A server or a proxy: anything with an ``http://`` base ``url``."""

    @property
    def url(self) -> str: ...


Target = str | HasUrl | None


def _need(what: str, module: str) -> None:
    """Fail the test with what to install when ``module`` cannot be imported."""
    missing = ""
    try:
        __import__(module)
    except ImportError as exc:
        missing = exc.name or module
    if missing:
        pytest.fail(f"{what} needs {missing}: {INSTALL}", pytrace=False)


# -- engines ---------------------------------------------------------------------------------------

ENGINE_MARKER = "pyrt_engines"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyrt", "pyrt's browser fixtures")
    group.addoption(
        "--pyrt-engine",
        action="append",
        default=[],
        metavar="ENGINES",
        help="engines the pyrt browser fixtures run each test in: chromium, firefox, webkit "
        "(comma-separated, or all); default: the pyrt_engine ini option, else chromium",
    )
    parser.addini(
        "pyrt_engine", "engines for the pyrt browser fixtures (comma-separated)", default="chromium"
    )


def selected_engines(config: pytest.Config) -> tuple[str, ...]:
    """The engines chosen with ``--pyrt-engine`` (else the ``pyrt_engine`` ini option)."""
    from pyrt.pytest_plugin.engines import parse_engines

    given: list[str] = config.getoption("pyrt_engine", default=None) or [str(config.getini("pyrt_engine"))]
    try:
        return parse_engines(given) or ("chromium",)
    except ValueError as exc:
        raise pytest.UsageError(f"--pyrt-engine: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ENGINE_MARKER}(*names): the engines (chromium, firefox, webkit) this test runs in, "
        "of those --pyrt-engine selects",
    )
    engines = selected_engines(config)
    if "firefox" in engines:
        from pyrt.pytest_plugin.firefox import install_shim

        try:
            state = install_shim()  # before Playwright's driver starts: the shim rides on its Node.js
        except ImportError:
            return  # no Playwright: the browser fixtures say what to install
        if not state.installed:
            config.issue_config_time_warning(pytest.PytestWarning(f"pyrt Firefox shim: {state.reason}"), 2)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses a pyrt browser fixture once per engine it may run in."""
    if "pyrt_engine" not in metafunc.fixturenames:
        return
    from pyrt.pytest_plugin.engines import parse_engines

    selected = selected_engines(metafunc.config)
    marker = metafunc.definition.get_closest_marker(ENGINE_MARKER)
    allowed = parse_engines(marker.args) if marker is not None else selected  # unknown names: an error
    chosen = [name for name in selected if name in allowed]
    if chosen:
        metafunc.parametrize("pyrt_engine", chosen, indirect=True, scope="session")
        return
    reason = f"runs in {', '.join(allowed)} only; --pyrt-engine selected {', '.join(selected)}"
    metafunc.parametrize(
        "pyrt_engine",
        [pytest.param(allowed[0], marks=pytest.mark.skip(reason=reason))],
        indirect=True,
        scope="session",
    )


def _capability_skip(exc: BaseException) -> BaseException:
    from pyrt.pytest_plugin.engines import MissingCapability

    if isinstance(exc, MissingCapability):
        return pytest.skip.Exception(str(exc), _use_item_location=True)
    return exc


# -- hooks -----------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    REGISTRY.begin_test()  # before the fixtures: resources they start count as this test's
    try:
        return (yield)
    except Exception as exc:
        skip = _capability_skip(exc)
        if skip is exc:
            raise
        raise skip from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    try:
        result = yield
    except Exception as exc:
        skip = _capability_skip(exc)
        if skip is exc:
            raise
        raise skip from None
    problems = REGISTRY.violations()
    if problems:
        lines = [f"{title}:\n  " + "\n  ".join(found) for title, found in problems]
        pytest.fail("a page tried to reach something outside localhost:\n" + "\n".join(lines), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        error = call.excinfo.value if call.excinfo is not None else None
        told = getattr(error, "page", None)  # a PyodideError carries its page's diagnostics already
        for title, text in REGISTRY.sections(skip=(told,) if told is not None else ()):
            report.sections.append((title, text))
    return report


# -- servers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pyrt_node_modules(pytestconfig: pytest.Config) -> Path | None:
    """Where npm installed ``pyodide`` (and ``@pyscript/core`` for PyScript pages): the project's
    ``node_modules`` when it holds Pyodide; else None (the server's default) when that default,
    the ``node_modules`` of a pyrt checkout, holds it; else (an installed pyrt, nothing installed
    yet) the project's all the same, so that the server's answer names the project as where to
    run ``npm install``. Every server the fixtures start gets it as ``--node-modules``."""
    import pyrt  # the server looks beside the package by default: a checkout's node_modules

    return choose_node_modules(pytestconfig.rootpath, Path(pyrt.__file__).resolve().parents[1])


def choose_node_modules(rootdir: Path, package_parent: Path) -> Path | None:
    """``pyrt_node_modules``'s choice for a project in ``rootdir`` and pyrt installed in
    ``package_parent`` (a checkout's root, or ``site-packages``)."""
    project = rootdir / "node_modules"
    if _has_pyodide(project):
        return project
    return None if _has_pyodide(package_parent / "node_modules") else project


def _has_pyodide(node_modules: Path) -> bool:
    return (node_modules / "pyodide" / "pyodide.mjs").is_file()


@pytest.fixture(scope="session")
def pyrt_server_args() -> Sequence[str]:
    """Options of ``pyrt_server`` (``python -m pyrt.server --help``); none by default: the
    server's defaults. Override it in a ``conftest.py``, e.g. ``return ["--web-dir", "site"]``."""
    return ()


def _server_options(node_modules: Path | None) -> list[str]:
    return ["--node-modules", str(node_modules)] if node_modules is not None else []


@pytest.fixture(scope="session")
def pyrt_server(pyrt_server_args: Sequence[str], pyrt_node_modules: Path | None) -> Iterator[ServerProcess]:
    """pyrt's server for the whole session (memory broker), on ``127.0.0.1`` and a free port.
    Shared: never stop it in a test; start your own with ``pyrt_start_server``."""
    _need("pyrt_server", "starlette")
    from pyrt.pytest_plugin.server_process import ServerProcess

    server = ServerProcess(*_server_options(pyrt_node_modules), *pyrt_server_args)
    yield server
    server.stop()


class ServerStarter:
    """``pyrt_start_server(*options, env=None, redis=False, files=None)`` starts a server for this test
    (``files``: its open-file limit).

    ``redis=True`` puts it on the session's ``redis-server`` (``pyrt_redis``; the test is skipped
    when there is none) under a key prefix of this test, so the Redis-backed servers one test
    starts share their channels (failover) and other tests' data stays apart.
    """

    def __init__(self, request: pytest.FixtureRequest, node_modules: Path | None) -> None:
        self._request = request
        self._node_modules = node_modules
        self.redis_prefix = f"pyrt-test-{uuid.uuid4().hex[:8]}:"
        self.started: list[ServerProcess] = []

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, redis: bool = False, files: int | None = None
    ) -> ServerProcess:
        _need("pyrt_start_server", "starlette")
        from pyrt.pytest_plugin.server_process import ServerProcess

        options = _server_options(self._node_modules)
        if redis:
            backend: RedisServer = self._request.getfixturevalue("pyrt_redis")
            options += ["--redis", backend.url, "--redis-prefix", self.redis_prefix]
        server = ServerProcess(*options, *args, env=env, files=files)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def pyrt_start_server(
    request: pytest.FixtureRequest, pyrt_node_modules: Path | None
) -> Iterator[ServerStarter]:
    """Start servers with their own options (a restart scenario, a limit under test, a second
    instance); all are stopped after the test. See :class:`ServerStarter`."""
    starter = ServerStarter(request, pyrt_node_modules)
    yield starter
    starter.stop_all()


@pytest.fixture(scope="session")
def pyrt_redis() -> Iterator[RedisServer]:
    """A ``redis-server`` for the session on a free loopback port (no persistence); the test is
    skipped when ``redis-server`` is not installed, and fails instead in CI (``CI=true``)."""
    from pyrt.pytest_plugin.engines import in_ci
    from pyrt.pytest_plugin.redis_process import RedisServer, RedisUnavailable

    try:
        redis = RedisServer()
    except RedisUnavailable as exc:
        if in_ci():
            pytest.fail(
                f"{exc}\n(CI=true: a missing redis-server fails the tests that need it)", pytrace=False
            )
        pytest.skip(str(exc))
    yield redis
    redis.stop()


@pytest.fixture
def pyrt_channel(request: pytest.FixtureRequest) -> str:
    """A channel name for this test alone: the test's name and a random suffix
    (``test_chat-3f9a1c2e``). ``pyrt_server`` is shared by the whole session, its channels too:
    two tests on one channel see each other's publications, history and members."""
    return channel_name(request.node.name)


def channel_name(test_name: str) -> str:
    """``test_name`` made a valid channel name (letters, digits and ``_ . : @ -``, at most 64 of
    them) with 8 random hex digits after it."""
    base = re.sub(r"[^A-Za-z0-9_.:@-]+", "-", test_name).strip("-")[:55] or "test"
    return f"{base}-{uuid.uuid4().hex[:8]}"


# -- the chaos proxy ---------------------------------------------------------------------------------


@pytest.fixture
def pyrt_start_proxy() -> Iterator[Callable[[HasUrl | int], ChaosProxy]]:
    """``pyrt_start_proxy(server)`` (or a port) starts a chaos proxy in front of it; all are
    stopped after the test."""
    from pyrt.pytest_plugin.proxy import ChaosProxy

    started: list[ChaosProxy] = []

    def start(upstream: HasUrl | int) -> ChaosProxy:
        port = upstream if isinstance(upstream, int) else urlsplit(upstream.url).port
        if port is None:
            raise ValueError(f"pyrt_start_proxy needs a server whose URL has a port, got {upstream!r}")
        proxy = ChaosProxy(port)
        proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def pyrt_proxy(
    pyrt_start_proxy: Callable[[HasUrl | int], ChaosProxy], pyrt_server: ServerProcess
) -> ChaosProxy:
    """A chaos proxy in front of ``pyrt_server`` for this test. Open pages through it
    (``pyrt_new_page(pyrt_proxy)``) and all their traffic, same-origin, crosses it."""
    return pyrt_start_proxy(pyrt_server)


# -- the browser and pages -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pyrt_engine(request: pytest.FixtureRequest) -> Engine:
    """The engine this test runs in (:class:`~pyrt.pytest_plugin.engines.Engine`: ``name``,
    ``label``, ``has(capability)``, ``require(capability)``). Tests using a pyrt browser fixture
    are parametrized over the engines ``--pyrt-engine`` selects."""
    from pyrt.pytest_plugin.engines import ENGINES

    name = getattr(request, "param", None) or selected_engines(request.config)[0]
    return ENGINES[name]


def _unavailable(engine: Engine, reason: str) -> None:
    from pyrt.pytest_plugin.engines import in_ci

    message = f"{engine.name} ({engine.label}) cannot start: {reason}"
    if in_ci():
        pytest.fail(f"{message}\n(CI=true: an engine that cannot start fails its tests)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pyrt_browser(request: pytest.FixtureRequest, pyrt_engine: Engine) -> Iterator[BrowserDriver]:
    """The browser of this test's engine, one per engine for the whole session: a
    :class:`~pyrt.pytest_plugin.driver.BrowserDriver`. Chromium and Firefox are launched with
    pytest-playwright's Playwright and launch arguments (``--headed``, ``--slowmo``; Chromium
    also ``--browser-channel`` and the ``PYRT_CHROMIUM`` rule, see
    :mod:`pyrt.pytest_plugin.chromium`) and pass Playwright's ``Browser`` attributes through;
    WebKitGTK runs through Selenium on an Xvfb display of its own."""
    from pyrt.pytest_plugin.engines import EngineUnavailable

    driver: BrowserDriver
    if pyrt_engine.name == "webkit":
        from pyrt.pytest_plugin.driver import launch_webkit

        try:
            driver = launch_webkit(headed=bool(request.config.getoption("headed", default=False)))
        except EngineUnavailable as exc:
            _unavailable(pyrt_engine, str(exc))
    else:
        _need("pyrt_browser", "playwright")
        if not request.config.pluginmanager.has_plugin("playwright"):
            pytest.fail(
                f"pyrt_browser needs the pytest-playwright plugin (not loaded): {INSTALL}", pytrace=False
            )
        playwright = request.getfixturevalue("playwright")
        base = request.getfixturevalue("browser_type_launch_args")
        from pyrt.pytest_plugin.driver import PlaywrightBrowser

        if pyrt_engine.name == "firefox":
            from pyrt.pytest_plugin.firefox import launch_firefox

            try:
                driver = PlaywrightBrowser(launch_firefox(playwright, base), pyrt_engine)
            except EngineUnavailable as exc:
                _unavailable(pyrt_engine, str(exc))
        else:
            from pyrt.pytest_plugin.chromium import launch_options

            driver = PlaywrightBrowser(playwright.chromium.launch(**launch_options(base)), pyrt_engine)
    yield driver
    driver.close()


@pytest.fixture
def pyrt_page_files() -> Files:
    """Your Python files (and folders) for ``pyrt_page`` and ``pyrt_new_page``, unpacked into
    the page's ``/home/pyodide``; none by default. Override it next to your tests."""
    return ()


class PageOpener:
    """Opens guarded pages for one test and closes them after it.

    ``pyrt_new_page(target=None, path=None, *, files=None, ...)``: a :class:`PyodidePage` on
    ``target`` (a server, a proxy, a base URL; default ``pyrt_server``), with ``files`` (default
    ``pyrt_page_files``). ``pyrt_open_page(target=None, path="/", ...)``: an :class:`AppPage` on
    one of your pages. Other keywords go to the page class.
    """

    def __init__(self, request: pytest.FixtureRequest, files: Files) -> None:
        self._request = request
        self._files = files
        self.opened: list[AppPage] = []

    def _base(self, target: Target) -> str:
        if target is None:
            server: ServerProcess = self._request.getfixturevalue("pyrt_server")
            return server.url
        return target if isinstance(target, str) else target.url

    def _browser(self) -> BrowserDriver:
        browser: BrowserDriver = self._request.getfixturevalue("pyrt_browser")
        return browser

    def pyodide(
        self, target: Target = None, path: str | None = None, *, files: Files | None = None, **options: Any
    ) -> PyodidePage:
        browser = self._browser()  # first: it says what to install when Playwright is missing
        from pyrt.pytest_plugin.pyodide_page import PyodidePage

        chosen = self._files if files is None else files
        page = PyodidePage(browser, self._base(target), path, files=chosen, **options)
        self.opened.append(page)
        return page

    def app(self, target: Target = None, path: str = "/", **options: Any) -> AppPage:
        browser = self._browser()
        from pyrt.pytest_plugin.app_page import AppPage

        base = self._base(target)
        page = AppPage(browser, base.rstrip("/") + path if path else base, **options)
        self.opened.append(page)
        return page

    def close_all(self) -> None:
        for page in self.opened:
            page.close()


@pytest.fixture
def _pyrt_pages(
    request: pytest.FixtureRequest, pyrt_page_files: Files, pyrt_engine: Engine
) -> Iterator[PageOpener]:
    opener = PageOpener(request, pyrt_page_files)
    yield opener
    opener.close_all()


@pytest.fixture
def pyrt_new_page(_pyrt_pages: PageOpener) -> Callable[..., PyodidePage]:
    """Open Pyodide pages: ``pyrt_new_page(server_or_proxy_or_url, files=[...])``; closed after
    the test. See :class:`PageOpener`."""
    return _pyrt_pages.pyodide


@pytest.fixture
def pyrt_open_page(_pyrt_pages: PageOpener) -> Callable[..., AppPage]:
    """Open your own pages: ``pyrt_open_page(server_or_proxy, "/index.html")``, guarded like
    the Pyodide pages; drive them with ``.evaluate(js)`` in any engine, or with Playwright
    (``.page``) in Chromium and Firefox. Closed after the test."""
    return _pyrt_pages.app


@pytest.fixture
def pyrt_page(pyrt_new_page: Callable[..., PyodidePage]) -> PyodidePage:
    """A Pyodide page on ``pyrt_server`` with pyrt imported and ``pyrt_page_files`` in place:
    ``pyrt_page.run("import chat; chat.ROOM")`` returns JSON."""
    return pyrt_new_page()
