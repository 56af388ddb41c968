"""A guarded page (any engine) with Pyodide booted, pyrt imported and your own Python files in place.

``PyodidePage(browser, base_url, files=[...])`` opens a small page on ``base_url``'s origin that
loads Pyodide from ``base_url + "/vendor/pyodide/"`` and pyrt from ``base_url + "/pyrt.zip"`` (what
pyrt's server serves; pass a chaos proxy's URL and all the page's traffic crosses the proxy), then
unpacks ``files`` into ``/home/pyodide`` (on ``sys.path``): a file
keeps its name, a folder keeps its name and its tree, so ``files=["app/chat.py"]`` gives
``import chat``. ``path="/page.html"`` boots one of the server's pages instead; such a page must
set ``window.pyodide`` and ``window.pyodideReady`` (a promise), as pyrt's ``/pyodide.html`` does.

:meth:`PyodidePage.run` runs Python inside the page (top-level ``await`` allowed) and returns the
JSON-decoded value of the last expression. A failure raises :class:`PyodideError` with the Python
traceback, the page's console, uncaught errors, blocked and failed requests. Everything
:class:`~pyrt.pytest_plugin.app_page.AppPage` guards is guarded here too.
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from pyrt.pytest_plugin.app_page import NODE_MODULES_HINT, AppPage, PageNotServed

__all__ = ["HOME", "PyodideError", "PyodidePage", "pack_files"]

HOME = "/home/pyodide"
# The page's document comes from this address of the server (any local response will do), then
# the boot page is written into it: a document the server really sent counts as local for
# Chromium's Local Network Access checks, so its WebSockets may reach any loopback port.
DOCUMENT_PATH = "/healthz"

BOOT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pyrt test page</title></head><body>
<p id="status">Loading Python…</p>
<script type="module">
window.pyodideReady = (async () => {
  const t0 = performance.now();
  const { loadPyodide } = await import("__INDEX__pyodide.mjs");
  const pyodide = await loadPyodide({ indexURL: "__INDEX__" });
  const tBoot = performance.now();
  const answer = await fetch("__ZIP__", { cache: "no-cache" });
  if (!answer.ok) throw new Error(`GET __ZIP__ answered HTTP ${answer.status}`);
  pyodide.unpackArchive(await answer.arrayBuffer(), "zip", { extractDir: "__HOME__" });
  await pyodide.runPythonAsync(
    'import sys\\nif "__HOME__" not in sys.path:\\n    sys.path.insert(0, "__HOME__")\\nimport pyrt');
  window.pyodide = pyodide;
  document.getElementById("status").textContent = `Ready: Pyodide ${pyodide.version}`;
  return { bootMs: tBoot - t0, pyrtMs: performance.now() - tBoot };
})();
</script>
</body></html>
"""

READY_JS = """
async (timeoutMs) => {
  if (!window.pyodideReady) {
    throw new Error("the page did not start Pyodide: window.pyodideReady is not set");
  }
  let timer;
  try {
    return await Promise.race([
      window.pyodideReady,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Pyodide did not boot within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
"""

UNPACK_JS = """
([data, dir]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  window.pyodide.unpackArchive(bytes.buffer, "zip", { extractDir: dir });
}
"""

RUNNER = r"""
import importlib, json, traceback
from pyodide.code import eval_code_async

importlib.invalidate_caches()
_pyrt_test_namespaces = {}

def _pyrt_test_traceback(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<test code>":
        tb = tb.tb_next  # the harness's own frames say nothing about the failure
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))

async def _pyrt_test_run(code, ns_key):
    if ns_key:
        ns = _pyrt_test_namespaces.setdefault(ns_key, {"__name__": "__main__"})
    else:
        ns = {"__name__": "__main__"}
    try:
        value = await eval_code_async(code, ns, filename="<test code>")
    except BaseException as exc:
        return json.dumps({"ok": False, "error": _pyrt_test_traceback(exc)})
    try:
        return json.dumps({"ok": True, "value": value})
    except (TypeError, ValueError) as exc:
        return json.dumps({"ok": False, "error": f"result is not JSON-able: {exc!r}: {value!r}"})
"""

RUN_JS = """
async ([code, nsKey, timeoutMs]) => {
  const run = window.pyodide.globals.get("_pyrt_test_run");
  let timer;
  try {
    return await Promise.race([
      run(code, nsKey),
      new Promise((_, reject) => {
        const message = `Python code did not finish within ${timeoutMs} ms`;
        timer = setTimeout(() => reject(new Error(message)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    run.destroy();
  }
}
"""


class PyodideError(AssertionError):
    """Python inside the page failed, or the page could not boot; the message carries the
    diagnostics. ``page`` is the :class:`PyodidePage`; ``python_traceback`` the traceback, if any."""

    def __init__(self, message: str, page: PyodidePage, python_traceback: str = "") -> None:
        super().__init__(message)
        self.page = page
        self.python_traceback = python_traceback


def pack_files(files: Sequence[str | Path] | Mapping[str, str | Path]) -> bytes:
    """A zip of ``files``: paths (a file keeps its name, a folder its name and tree; caches left
    out), or a mapping ``{"name/in/page.py": "local/path.py"}``."""
    entries: dict[str, Path] = {}
    items = files.items() if isinstance(files, Mapping) else ((None, f) for f in files)
    for target, source in items:
        path = Path(source)
        if path.is_file():
            found = {target or path.name: path}
        elif path.is_dir():
            found = {
                str(PurePosixPath(target or path.name, *p.relative_to(path).parts)): p
                for p in sorted(path.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            }
        else:
            raise FileNotFoundError(f"{source} does not exist (files= takes Python files and folders)")
        for name in found:
            if name in entries:
                raise ValueError(f"two files would land on {HOME}/{name}: {entries[name]} and {found[name]}")
        entries.update(found)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in entries.items():
            archive.writestr(name, path.read_bytes())
    return buffer.getvalue()


class PyodidePage(AppPage):
    """One guarded context and page on ``base_url`` with Pyodide booted (see the module docstring).

    ``boot_timeout`` bounds the boot; ``allow``, ``context_args`` and ``hidden`` are
    :class:`AppPage`'s.
    :attr:`timings` holds what the page reported about its boot (``bootMs``, ``pyrtMs``) and
    ``totalMs`` measured from the test.
    """

    def __init__(
        self,
        browser: Any,
        base_url: str,
        path: str | None = None,
        *,
        files: Sequence[str | Path] | Mapping[str, str | Path] = (),
        boot_timeout: float = 90.0,
        allow: Sequence[str] = (),
        context_args: Mapping[str, Any] | None = None,
        hidden: bool = False,
    ) -> None:
        if path is None:
            # The boot page is ours, written into a response the server sent for something else:
            # that response's security headers, if any, are not the policy of a page of yours.
            context_args = {"bypass_csp": True, **(context_args or {})}
        super().__init__(browser, allow=allow, context_args=context_args, hidden=hidden)
        self.base_url = base_url.rstrip("/")
        self.path = path
        self.boot_timeout = boot_timeout
        self._files = pack_files(files) if files else b""
        if path is None:
            base_path = urlsplit(self.base_url).path
            self._boot_page = (
                BOOT_PAGE.replace("__INDEX__", f"{base_path}/vendor/pyodide/")
                .replace("__ZIP__", f"{base_path}/pyrt.zip")
                .replace("__HOME__", HOME)
            )
        self.timings: dict[str, Any] = {}
        try:
            self._boot()
        except BaseException:
            self.close()
            raise

    @property
    def report_title(self) -> str:
        return f"pyrt Pyodide page on {self.base_url}{self.path or ''}"

    @property
    def url(self) -> str:
        """The address this page boots from."""
        return self.base_url + (self.path if self.path is not None else DOCUMENT_PATH)

    def _load(self) -> None:
        __tracebackhide__ = True
        try:
            response = self.goto(self.url)
            if self.path is None:
                self.driver.write(self._boot_page)
            else:
                self.check_served(
                    self.url, response
                )  # a 404, no runtime: say so now, not at the boot timeout
        except PageNotServed as exc:
            raise PyodideError(f"{exc}\n{self.diagnostics()}", self) from None
        except Exception as exc:
            raise PyodideError(f"the page did not load: {exc}\n{self.diagnostics()}", self) from None

    def _boot(self) -> None:
        started = time.perf_counter()
        self._load()
        self._finish_boot(started, "the page did not boot")

    def reload(self) -> None:
        """Load the page again (the browser fires ``pagehide``) and boot again: Pyodide, pyrt,
        your files. Python state is gone; ``localStorage`` and cookies stay."""
        started = time.perf_counter()
        if self.path is None:
            self._load()
        else:
            self.driver.reload()
        self._finish_boot(started, "the page did not boot again")

    def _finish_boot(self, started: float, failure: str) -> None:
        __tracebackhide__ = True
        try:
            reported = self.driver.evaluate(READY_JS, int(self.boot_timeout * 1000))
        except Exception as exc:
            raise PyodideError(f"{failure}: {exc}\n{self.diagnostics()}{self._hint()}", self) from None
        self.timings = {**(reported or {}), "totalMs": (time.perf_counter() - started) * 1000}
        if self._files:
            self.driver.evaluate(UNPACK_JS, [base64.b64encode(self._files).decode("ascii"), HOME])
        self.driver.evaluate("(code) => window.pyodide.runPythonAsync(code)", RUNNER)

    def _hint(self) -> str:
        missing = self.runtime_missing()
        if missing:  # the server said why, and how to install it
            return "\nPyodide is not served:\n" + "\n".join(missing) + f"\n{NODE_MODULES_HINT}"
        if any("/vendor/pyodide/" in line for line in self._records.network_errors):
            return (
                "\nPyodide is not served: install it where the server looks (npm install pyodide), "
                "or point the server at it with --node-modules (see the pyrt_node_modules fixture)."
            )
        return ""

    def run(self, code: str, *, ns: str | None = None, timeout: float = 30.0) -> Any:
        """Run ``code`` in Pyodide; return the JSON value of its last expression.

        Each call gets a fresh namespace unless ``ns`` names one to keep between calls (define
        objects in one call, use them in the next). ``timeout`` bounds the call in seconds.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not the harness's
        try:
            raw = self.driver.evaluate(RUN_JS, [code, ns, int(timeout * 1000)])
        except Exception as exc:
            raise PyodideError(f"{exc}\n{self.diagnostics()}", self) from None
        result = json.loads(raw)
        if not result["ok"]:
            error = result["error"]
            raise PyodideError(f"Python failed inside the page:\n{error}\n{self.diagnostics()}", self, error)
        return result["value"]

    def wait_for(self, code: str, *, ns: str | None = None, timeout: float = 10.0) -> Any:
        """Evaluate ``code`` (an expression) until it is truthy, for at most ``timeout`` seconds;
        return its value."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(code, ns=ns)
            if value:
                return value
            if time.monotonic() > deadline:
                last = f"{code!r} stayed falsy for {timeout:g} s (last: {value!r})"
                raise PyodideError(f"{last}\n{self.diagnostics()}", self)
            self.driver.wait_for_timeout(20)
