"""Firefox through Playwright over WebDriver BiDi, and the one shim Firefox ESR needs.

Playwright 1.65 sends the BiDi command ``emulation.setMediaFeaturesOverride`` for every new
browser context (only to set ``prefers-color-scheme``), and Firefox ESR 153 does not implement it:
every ``new_context()`` fails with ``unknown command``. The shim makes that one call best-effort
(``sendMayFail``, the driver's own helper for calls that may fail) by rewriting the string when
Playwright's driver bundle loads: a Node.js ``--require`` preload, run by a small wrapper script
that Playwright starts as its Node.js (``PLAYWRIGHT_NODEJS_PATH``).

The shim is tied to the Playwright version it was written for (:data:`WRITTEN_FOR`). It checks
before it installs: when the bundle has nothing to patch (Playwright made the call best-effort
itself, or changed it), it installs nothing and says so (:func:`install_shim` returns why), and a
Firefox that then fails on the command fails with a message naming the shim. Drop the shim when
Playwright or Firefox ESR moves past the mismatch.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrt.pytest_plugin.engines import EngineUnavailable, firefox_executable

__all__ = ["WRITTEN_FOR", "ShimState", "install_shim", "launch_firefox", "shim_state"]

#: The Playwright versions the shim was written for (the bundle's text it rewrites).
WRITTEN_FOR = "1.65"
COMMAND = "emulation.setMediaFeaturesOverride"
_CALL = re.compile(r'\.send\("' + re.escape(COMMAND) + '"')

PRELOAD = r"""
// pyrt: make Playwright's emulation.setMediaFeaturesOverride best-effort (Firefox ESR lacks it).
const Module = require("module");
const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  if (filename.endsWith("coreBundle.js")) {
    const patched = content.replace(/\.send\("emulation\.setMediaFeaturesOverride"/g,
                                    '.sendMayFail("emulation.setMediaFeaturesOverride"');
    if (patched === content) {
      process.stderr.write(`pyrt Firefox shim: nothing to patch in ${filename}\n`);
    }
    content = patched;
  }
  return compile.call(this, content, filename);
};
"""


@dataclass(frozen=True, slots=True)
class ShimState:
    """What :func:`install_shim` found: ``installed`` or not, and why (``reason``)."""

    installed: bool
    reason: str


_STATE: ShimState | None = None


def _driver_paths() -> tuple[Path, Path, str]:
    import playwright
    from playwright._repo_version import version

    driver = Path(playwright.__file__).parent / "driver"
    return driver / "package" / "lib" / "coreBundle.js", driver / "node", version


def install_shim(env: dict[str, str] | None = None) -> ShimState:
    """Install the shim for this process's Playwright driver (before it starts) when there is
    something to patch; return what was done and why. Idempotent."""
    global _STATE
    if _STATE is not None:
        return _STATE
    environ: Any = os.environ if env is None else env
    bundle, bundled_node, version = _driver_paths()
    if not bundle.is_file():
        _STATE = ShimState(False, f"Playwright {version} has no {bundle}: the Firefox shim cannot check it")
        return _STATE
    calls = len(_CALL.findall(bundle.read_text(encoding="utf-8")))
    if calls == 0:
        _STATE = ShimState(
            False,
            f"nothing to patch in Playwright {version} (the shim was written for {WRITTEN_FOR}): "
            f"it no longer awaits {COMMAND}; remove the shim from pyrt/pytest_plugin/firefox.py",
        )
        return _STATE
    node = environ.get("PLAYWRIGHT_NODEJS_PATH") or str(bundled_node)
    folder = Path(tempfile.mkdtemp(prefix="pyrt-firefox-shim-"))
    preload = folder / "preload.js"
    preload.write_text(PRELOAD, encoding="utf-8")
    wrapper = folder / "node"
    wrapper.write_text(
        f'#!/bin/sh\nexec {shlex.quote(node)} --require {shlex.quote(str(preload))} "$@"\n', encoding="utf-8"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    environ["PLAYWRIGHT_NODEJS_PATH"] = str(wrapper)
    note = "" if version.startswith(WRITTEN_FOR) else f" (written for {WRITTEN_FOR}: check it still applies)"
    _STATE = ShimState(True, f"{COMMAND} made best-effort in {calls} calls of Playwright {version}{note}")
    return _STATE


def shim_state() -> ShimState | None:
    """What :func:`install_shim` did in this process, or None when it was not called."""
    return _STATE


def launch_firefox(playwright: Any, base: Mapping[str, Any] | None = None) -> Any:
    """``playwright.firefox.launch`` of the system Firefox over BiDi; a first context is opened
    and closed at once, so an engine that cannot make pages fails here, with a clear reason."""
    options = {k: v for k, v in dict(base or {}).items() if k not in ("args", "channel", "executable_path")}
    options.update(channel="moz-firefox", executable_path=firefox_executable())
    try:
        browser = playwright.firefox.launch(**options)
    except Exception as exc:
        raise EngineUnavailable(f"Firefox did not start: {exc}") from None
    try:
        browser.new_context().close()
    except Exception as exc:
        browser.close()
        state = shim_state()
        hint = ""
        if COMMAND in str(exc):
            told = state.reason if state else "install_shim() was not called before Playwright started"
            hint = f"\nPlaywright awaits {COMMAND}, which this Firefox lacks; the pyrt shim: {told}"
        raise EngineUnavailable(f"Firefox started but cannot open a page: {exc}{hint}") from None
    return browser
