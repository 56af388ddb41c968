"""The example notebooks run as shipped in the offline JupyterLite site that serve.py shows at ``/lab/``.

The site is built by ``scripts/build_notebook.py`` (``make notebook``) from the working tree, and
served by a server started exactly as ``make demo`` starts it (the command is read from the
Makefile): what a reader of the notebooks' instructions runs. Every notebook in ``examples/`` is
opened in JupyterLab-in-the-browser, all its cells run in the Pyodide kernel, and the outputs are
read. Every request that leaves the test server is blocked and reported.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import urllib.request
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
NOTEBOOKS = sorted(path.name for path in (REPO / "examples").glob("*.ipynb"))
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


def make_demo_command(**variables: str) -> list[str]:
    """The command ``make demo`` runs (``make -n``: printed, not run; ``-o setup``: without the
    setup steps it depends on), with ``variables`` set as on make's command line."""
    assigned = [f"{name}={value}" for name, value in variables.items()]
    printed = (
        subprocess.run(
            ["make", "-s", "--no-print-directory", "-n", "-o", "setup", "demo", *assigned],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        .stdout.strip()
        .splitlines()
    )
    (line,) = [line for line in printed if "serve.py" in line]
    words = shlex.split(line)
    return [str(REPO / word) if (REPO / word).exists() else word for word in words]


@pytest.fixture(scope="module")
def demo_server() -> Iterator[ServerProcess]:
    """A server started exactly as ``make demo`` starts it (on a free port, ``PORT=0``)."""
    command = make_demo_command(HOST="127.0.0.1", PORT="0")
    server = ServerProcess(command=command)  # ServerProcess adds --host 127.0.0.1 --port 0 again
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(pyrt_browser: Browser, demo_server: ServerProcess, site: float) -> Iterator[Lab]:
    lab = Lab(pyrt_browser, demo_server)
    yield lab
    lab.close()


Outputs = list[list[dict[str, Any]]]

# Records, while the cells run, every state of the live charts the page shows: how many there
# are and how many readings each draws (its data-readings), each time the output changes.
WATCH_CHARTS = """() => {
  window.chartStates = [];
  const record = () => {
    const charts = [...document.querySelectorAll(".jp-OutputArea-output svg[data-readings]")];
    const state = charts.map((chart) => Number(chart.dataset.readings));
    const last = window.chartStates[window.chartStates.length - 1];
    if (JSON.stringify(last) !== JSON.stringify(state)) window.chartStates.push(state);
  };
  new MutationObserver(record).observe(document.body, { childList: true, subtree: true });
}"""


def hello_outputs_are_right(lab: Lab, page: Page, cells: Outputs) -> None:
    version, server, echo = map(text_of, cells)
    assert version == f"pyrt {pyrt.__version__} on emscripten\n"
    assert server == f"server: {lab.origin}\n"
    assert echo.splitlines() == [f"echo: hello {n} from pyrt {pyrt.__version__}" for n in (1, 2, 3)]
    where = lab.execute(page, "import pyrt; print(pyrt.__file__)")
    assert where == "/lib/python3.14/site-packages/pyrt/__init__.py\n"


def dashboard_outputs_are_right(lab: Lab, page: Page, cells: Outputs) -> None:
    last = cells[-1]
    assert text_of(last) == "dashboard received 20 readings, last #20\n"
    displayed = [output for output in last if output["output_type"] == "display_data"]
    assert len(displayed) == 1, "the chart is one output, updated in place"
    chart = html_of(displayed)
    assert 'data-readings="20"' in chart
    assert 'aria-label="20 readings, last #20: ' in chart
    points = re.search(r'<polyline points="([^"]*)"', chart)
    assert points is not None
    assert len(points[1].split()) == 20, "the line goes through every reading"
    # It moved while the readings came: one chart on the page at every moment, drawing more
    # and more readings, not a chart per reading nor only the final picture.
    states: list[list[int]] = page.evaluate("window.chartStates")
    assert all(len(state) <= 1 for state in states), states
    drawn = [state[0] for state in states if state]
    assert drawn == sorted(drawn), drawn
    assert drawn[-1] == 20
    assert len(set(drawn)) >= 5, f"the chart was seen with only {sorted(set(drawn))} readings"
    print(f"the live chart was redrawn {len(drawn)} times: {drawn}")


def chat_outputs_are_right(lab: Lab, page: Page, cells: Outputs) -> None:
    lines = [line for cell in cells for line in text_of(cell).splitlines()]
    received = [line.split(" (offset")[0] for line in lines if line.startswith("received:")]
    assert received == [f"received: notebook: hello {n}" for n in (1, 2, 3)]
    assert text_of(cells[-1]) == "closed by the notebook: True\n"


def inspect_outputs_are_right(lab: Lab, page: Page, cells: Outputs) -> None:
    _, shown, broken, text, closed = cells
    # One output shows it (the cell's own result is empty: the inspector displayed itself).
    views = [output for output in shown if output.get("data", {}).get("text/html")]
    assert len(views) == 1, "the inspector is one output, updated in place"
    assert all(output.get("data", {}).get("text/html") for output in shown if output.get("data")), shown
    view = html_of(views)
    assert view.startswith('<div class="pyrt-inspector"')
    # What happened after the cell that showed it ran: the view moved on by itself.
    assert "open → reconnecting" in view
    assert "closed with code 1006" in view
    assert "answers publish #" in view
    assert text_of(broken).endswith("after 1 reconnect\n")
    summary = text_of(text)
    assert summary.startswith("WebSocketClient [open] over websocket")
    assert "open -> reconnecting  (closed with code 1006" in summary
    assert "recovered" in summary
    assert text_of(closed) == "inspector closed: True\n"


CHECKS: dict[str, Callable[[Lab, Page, Outputs], None]] = {
    "hello.ipynb": hello_outputs_are_right,
    "dashboard.ipynb": dashboard_outputs_are_right,
    "chat.ipynb": chat_outputs_are_right,
    "inspect.ipynb": inspect_outputs_are_right,
}


@pytest.fixture(scope="module")
def hello(lab: Lab) -> tuple[Page, float]:
    """``hello.ipynb`` open with its kernel idle (booted once); the seconds the boot took."""
    started = time.perf_counter()
    page = lab.open("hello.ipynb")
    return page, time.perf_counter() - started


def test_the_make_demo_server_is_the_one_the_notebooks_run_against(demo_server: ServerProcess) -> None:
    assert demo_server.command[1] == str(REPO / "serve.py")
    assert "--demo" in demo_server.command
    assert "--echo" not in demo_server.command  # /echo stays opt-in: the notebooks must not need it
    health = json.loads(urllib.request.urlopen(f"{demo_server.url}/healthz", timeout=10).read())
    assert health == {"status": "ok", "demo": True}


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_example_notebook_runs_as_shipped_against_the_make_demo_server(
    lab: Lab, hello: tuple[Page, float], notebook: str
) -> None:
    started = time.perf_counter()
    page = hello[0] if notebook == "hello.ipynb" else lab.open(notebook)
    booted = time.perf_counter() - started
    try:
        page.evaluate(WATCH_CHARTS)
        ran = time.perf_counter()
        cells = lab.run_all(page)  # fails on any cell that raised or did not run
        ran = time.perf_counter() - ran
        check = CHECKS.get(notebook)
        assert check is not None, f"examples/{notebook} runs; add what its outputs must show to CHECKS"
        check(lab, page, cells)
        assert lab.blocked_requests == []
    finally:
        if page is not hello[0]:
            page.close()
    boot = hello[1] if notebook == "hello.ipynb" else booted
    print(f"{notebook}: kernel idle in {boot:.1f} s, cells ran in {ran:.1f} s")


def test_the_notebook_site_loads_nothing_from_outside_the_test_server(
    lab: Lab, hello: tuple[Page, float]
) -> None:
    lab.execute(hello[0], "import pyrt")
    assert any("/lab/static/pyodide/pyrt-" in url for url in lab.requests), "pyrt's wheel was not loaded"
    assert any("/lab/static/pyodide/pyodide.asm.wasm" in url for url in lab.requests)
    assert all(url.startswith(lab.origin + "/") or url.startswith(("data:", "blob:")) for url in lab.requests)
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
