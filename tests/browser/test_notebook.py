"""The example notebooks run in the offline JupyterLite site that serve.py shows at ``/lab/``.

The site is built by ``scripts/build_notebook.py`` (``make notebook``) from the working tree. Each
test opens a notebook in JupyterLab-in-the-browser, runs all its cells in the Pyodide kernel and
reads the outputs. Every request that leaves the test server is blocked and reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

import pyrt
from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until
from tests import REPO
from tests.browser.reload_scenario import reload_scenario

pytestmark = pytest.mark.pyrt_engines("chromium")  # JupyterLite: outside the reliability core

SITE = REPO / ".cache" / "lite"
KERNEL_IDLE = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;
  return panel?.sessionContext?.session?.kernel?.status === "idle" && panel.content?.widgets?.length > 0;
}"""
KERNEL_STATUS = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;
  const kernel = panel?.sessionContext?.session?.kernel;
  return `app: ${!!window.jupyterapp}, panel: ${!!panel}, kernel: ${kernel?.status ?? "none"}`;
}"""
KERNEL_BOOT = 90.0  # seconds for JupyterLab and its kernel to start, first or after a reload
RUN_ALL = """async (timeoutMs) => {
  const app = window.jupyterapp;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`cells still running after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([app.commands.execute("notebook:run-all-cells"), timeout]);
  } finally {
    clearTimeout(timer);
  }
  const cells = app.shell.currentWidget.content.widgets.filter((cell) => cell.model.type === "code");
  return cells.map((cell) => ({ count: cell.model.executionCount, outputs: cell.model.toJSON().outputs }));
}"""
EXECUTE = """async ([code, timeoutMs]) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({ code });
  const out = [];
  future.onIOPub = (msg) => {
    if (msg.header.msg_type === "stream") out.push(msg.content.text);
    if (msg.header.msg_type === "error") out.push(msg.content.traceback.join("\\n"));
  };
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`code still running after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([future.done, timeout]);
  } finally {
    clearTimeout(timer);
  }
  return out.join("");
}"""


def text_of(outputs: list[dict[str, Any]]) -> str:
    """The printed text of a cell: its streams and tracebacks."""
    parts: list[str] = []
    for output in outputs:
        if output["output_type"] == "stream":
            text = output["text"]
            parts.append(text if isinstance(text, str) else "".join(text))
        elif output["output_type"] == "error":
            parts.append("\n".join(output["traceback"]))
    return "".join(parts)


def html_of(outputs: list[dict[str, Any]]) -> str:
    """The HTML a cell displays (``display``, updated in place by a display handle)."""
    parts = [output.get("data", {}).get("text/html", "") for output in outputs]
    return "".join(part if isinstance(part, str) else "".join(part) for part in parts)


class Lab(AppPage):
    """One guarded browser context on the test server's ``/lab/`` (service workers allowed: the
    ``/drive`` filesystem needs them)."""

    def __init__(self, browser: Browser, server: ServerProcess) -> None:
        super().__init__(browser)
        self.origin = server.url

    def open(self, notebook: str, timeout: float = KERNEL_BOOT) -> Page:
        """Open ``notebook`` in JupyterLab and wait until its kernel (with pyrt) is idle."""
        page = self.context.new_page()
        page.goto(f"{self.origin}/lab/lab/index.html?path={notebook}")
        page.wait_for_function(KERNEL_IDLE, timeout=timeout * 1000)
        return page

    def run_all(self, page: Page, timeout: float = 60.0) -> list[list[dict[str, Any]]]:
        """Run every cell; return the outputs of each code cell (failing on any error)."""
        cells = page.evaluate(RUN_ALL, int(timeout * 1000))
        failed = [
            text_of(cell["outputs"]) or "(no output)"
            for cell in cells
            if cell["count"] is None or any(output["output_type"] == "error" for output in cell["outputs"])
        ]
        assert not failed, "a cell failed or did not run:\n" + "\n---\n".join(
            [*failed, "--- console (last 30) ---", *self.console[-30:]]
        )
        return [cell["outputs"] for cell in cells]

    def execute(self, page: Page, code: str, timeout: float = 30.0) -> str:
        """Run ``code`` in the notebook's kernel (not in a cell); return what it printed."""
        result: str = page.evaluate(EXECUTE, [code, int(timeout * 1000)])
        return result

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def site() -> float:
    """Build the site from the working tree, as ``make notebook`` does; return the seconds it took."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_notebook.py")], check=True, cwd=REPO)
    assert (SITE / "lab" / "index.html").is_file()
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def lab(pyrt_browser: Browser, pyrt_server: ServerProcess, site: float) -> Iterator[Lab]:
    lab = Lab(pyrt_browser, pyrt_server)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def hello(lab: Lab) -> tuple[Page, float]:
    """``hello.ipynb`` open with its kernel idle (booted once); the seconds the boot took."""
    started = time.perf_counter()
    page = lab.open("hello.ipynb")
    return page, time.perf_counter() - started


def test_hello_runs_offline_in_jupyterlite_with_the_preloaded_pyrt_wheel(
    lab: Lab, hello: tuple[Page, float]
) -> None:
    page, boot = hello
    started = time.perf_counter()
    version, server, echo = map(text_of, lab.run_all(page))
    ran = time.perf_counter() - started

    assert version == f"pyrt {pyrt.__version__} on emscripten\n"
    assert server == f"server: {lab.origin}\n"
    assert echo.splitlines() == [f"echo: hello {n} from pyrt {pyrt.__version__}" for n in (1, 2, 3)]
    where = lab.execute(page, "import pyrt; print(pyrt.__file__)")
    assert where == "/lib/python3.14/site-packages/pyrt/__init__.py\n"
    print(f"JupyterLite: kernel idle in {boot:.1f} s, cells ran in {ran:.1f} s")


def test_the_notebook_site_loads_nothing_from_outside_the_test_server(
    lab: Lab, hello: tuple[Page, float]
) -> None:
    lab.execute(hello[0], "import pyrt")
    assert any("/lab/static/pyodide/pyrt-" in url for url in lab.requests), "pyrt's wheel was not loaded"
    assert any("/lab/static/pyodide/pyodide.asm.wasm" in url for url in lab.requests)
    assert all(url.startswith(lab.origin + "/") or url.startswith(("data:", "blob:")) for url in lab.requests)
    assert lab.blocked_requests == []


Outputs = list[list[dict[str, Any]]]


def dashboard_outputs_are_right(cells: Outputs) -> None:
    last = cells[-1]
    assert text_of(last) == "dashboard received 20 readings, last #20\n"
    assert "<td>20</td>" in html_of(last), "the live table does not show the last reading"


def chat_outputs_are_right(cells: Outputs) -> None:
    lines = [line for cell in cells for line in text_of(cell).splitlines()]
    received = [line.split(" (offset")[0] for line in lines if line.startswith("received:")]
    assert received == [f"received: notebook: hello {n}" for n in (1, 2, 3)]
    assert text_of(cells[-1]) == "closed by the notebook: True\n"


@pytest.mark.parametrize(
    ("notebook", "needs", "check"),
    [
        ("dashboard.ipynb", ("EventSourceClient",), dashboard_outputs_are_right),
        ("chat.ipynb", ("WebSocketClient",), chat_outputs_are_right),
    ],
)
def test_the_example_notebooks_receive_live_messages_through_pyrt(
    lab: Lab, notebook: str, needs: tuple[str, ...], check: Callable[[Outputs], None]
) -> None:
    missing = [name for name in needs if not hasattr(pyrt, name)]
    if missing:
        pytest.skip(f"{notebook} needs pyrt.{', pyrt.'.join(missing)}, which does not exist yet")
    page = lab.open(notebook)
    check(lab.run_all(page))
    assert lab.blocked_requests == []


class Kernel:
    """A notebook's kernel as a runner of :mod:`tests.browser.reload_scenario`: ``run`` evaluates
    code in a namespace of the kernel and returns the JSON value of its last expression."""

    def __init__(self, lab: Lab, notebook: str) -> None:
        self.lab = lab
        self.page = lab.open(notebook)

    def run(self, code: str, *, ns: str | None = None, timeout: float = 30.0) -> Any:
        wrapped = f"""
import json as _json
from pyodide.code import eval_code_async as _eval
_space = globals().setdefault("_pyrt_spaces", {{}}).setdefault({ns!r}, {{"__name__": "__main__"}})
print("@@" + _json.dumps(await _eval({code!r}, _space)))
"""
        out = self.lab.execute(self.page, wrapped, timeout)
        for line in out.splitlines():
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise AssertionError(f"the kernel printed no value:\n{out}\n{self.lab.diagnostics()}")

    def wait_for(self, code: str, *, ns: str | None = None, timeout: float = 10.0) -> Any:
        return wait_until(lambda: self.run(code, ns=ns), timeout, f"{code!r} in the kernel", page=self.page)

    def reload(self) -> None:
        """Reload JupyterLab: the kernel's worker is terminated and a new kernel starts (the
        same deadline as a first start, with the room a busy machine needs: 27 s alone)."""
        mark = self.lab.mark()
        self.page.reload()
        try:
            self.page.wait_for_function(KERNEL_IDLE, timeout=KERNEL_BOOT * 1000)
        except PlaywrightTimeoutError:
            status = self.page.evaluate(KERNEL_STATUS)
            raise AssertionError(
                f"the kernel was not idle {KERNEL_BOOT:g} s after the reload ({status})\n"
                + self.lab.diagnostics(mark)
            ) from None


def test_persisted_state_survives_a_reload_of_the_jupyterlite_kernel_exactly_once(
    pyrt_browser: Browser, pyrt_start_server: Callable[..., ServerProcess], site: float
) -> None:
    # The client reaches the server through a chaos proxy (another port: any origin).
    server = pyrt_start_server("--demo", "--demo-tick", "0", "--allowed-origin", "*")
    lab = Lab(pyrt_browser, server)
    try:
        reload_scenario(Kernel(lab, "hello.ipynb"), server, name="14-jupyterlite-reload", storage="indexeddb")
    finally:
        lab.close()
