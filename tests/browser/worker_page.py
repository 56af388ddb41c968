"""A guarded page whose Python runs in a PyScript worker (``<script type="py" worker>``), as real
apps do.

The page is written into a response of the test server (``/healthz``): a document the server
really sent counts as local for Chromium's Local Network Access checks, so its worker may open
sockets to any loopback port (a chaos proxy's). It loads PyScript and Pyodide from the server;
pyrt comes from ``/pyrt.zip`` through PyScript's ``files``. The worker exposes the plugin's runner
through ``pyscript.sync``, which the main thread calls asynchronously (no SharedArrayBuffer
needed). :meth:`WorkerPage.run` runs Python inside the worker and returns the JSON value of its
last expression, like the plugin's :class:`~pyrt.pytest_plugin.pyodide_page.PyodidePage`.
"""

from __future__ import annotations

import json
from typing import Any

from pyrt.pytest_plugin.app_page import AppPage
from pyrt.pytest_plugin.pyodide_page import RUNNER
from pyrt.pytest_plugin.waiting import wait_until

DOCUMENT_PATH = "/healthz"

PAGE = (
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>pyrt in a worker</title>
<script type="module" src="/vendor/pyscript/core.js"></script></head><body>
<script type="py" worker
 config='{"interpreter": "/vendor/pyodide/pyodide.mjs", "files": {"/pyrt.zip": "./*"}}'>
"""
    + RUNNER
    + """
from pyscript import sync
sync.run = _pyrt_test_run
</script>
</body></html>"""
)

RUN_JS = """
async ([code, key, timeoutMs]) => {
  const worker = document.querySelector("script[worker]").xworker;
  let timer;
  try {
    return await Promise.race([
      worker.sync.run(code, key),
      new Promise((_, reject) => {
        const late = new Error(`worker code did not finish within ${timeoutMs} ms`);
        timer = setTimeout(() => reject(late), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
"""

READY_JS = """
async (timeoutMs) => {
  const deadline = performance.now() + timeoutMs;
  const script = document.querySelector("script[worker]");
  while (performance.now() < deadline) {
    const worker = script && script.xworker;
    if (worker) {
      const answer = await Promise.race([
        worker.sync.run("import pyrt", null).catch(() => null),
        new Promise((resolve) => setTimeout(() => resolve(null), 500)),
      ]);
      if (answer) return answer;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the worker did not start within ${timeoutMs} ms`);
}
"""


class WorkerError(AssertionError):
    """Python inside the worker failed; the message carries the page's diagnostics."""


class WorkerPage(AppPage):
    """One guarded context with a page whose Python runs in a PyScript worker."""

    def __init__(self, browser: Any, base_url: str, boot_timeout: float = 90.0) -> None:
        # The page is ours, written into a response sent for something else: bypass its headers.
        super().__init__(browser, context_args={"bypass_csp": True})
        self.base_url = base_url
        self.boot_timeout = boot_timeout
        try:
            self.reload()
        except BaseException:
            self.close()
            raise

    def reload(self) -> None:
        """(Re)load the page: a worker already running is terminated (it gets no ``pagehide``)
        and a new one boots."""
        self.goto(self.base_url + DOCUMENT_PATH)
        self.driver.write(PAGE)
        try:
            self.driver.evaluate(READY_JS, int(self.boot_timeout * 1000))
        except Exception as exc:
            raise WorkerError(f"{exc}\n{self.diagnostics()}") from None

    def run(self, code: str, *, ns: str | None = None, timeout: float = 30.0) -> Any:
        """Run ``code`` in the worker's Pyodide; return the JSON value of its last expression."""
        try:
            raw = self.driver.evaluate(RUN_JS, [code, ns, int(timeout * 1000)])
        except Exception as exc:
            raise WorkerError(f"{exc}\n{self.diagnostics()}") from None
        result = json.loads(raw)
        if not result["ok"]:
            raise WorkerError(f"Python failed inside the worker:\n{result['error']}\n{self.diagnostics()}")
        return result["value"]

    def wait_for(self, code: str, *, ns: str | None = None, timeout: float = 10.0) -> Any:
        """Evaluate ``code`` (an expression) until it is truthy, for at most ``timeout`` seconds."""
        return wait_until(lambda: self.run(code, ns=ns), timeout, f"{code!r} in the worker", page=self)
