"""Which Chromium the pyrt fixtures launch, and with which flags.

The ``PYRT_CHROMIUM`` environment variable picks the binary:

- set to a path: that binary;
- set but empty: the Chromium that Playwright downloads (``playwright install chromium``), or the
  ``--browser-channel`` given to pytest-playwright;
- unset: the system Chromium at ``/usr/bin/chromium`` when it exists (and no channel or
  ``executable_path`` was asked for), else Playwright's own.

The flags keep the browser hermetic and quiet: no background requests of its own, no QUIC, no GPU,
no sandbox (containers, root), and ``gc()`` exposed to pages for memory tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_FLAGS", "ENV_VAR", "SYSTEM_CHROMIUM", "chromium_executable", "launch_options"]

ENV_VAR = "PYRT_CHROMIUM"
SYSTEM_CHROMIUM = "/usr/bin/chromium"

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--js-flags=--expose-gc",
)


def chromium_executable(env: Mapping[str, str] | None = None, *, system: str = SYSTEM_CHROMIUM) -> str | None:
    """The binary the ``PYRT_CHROMIUM`` rule picks, or None for Playwright's own choice."""
    environ = os.environ if env is None else env
    if ENV_VAR in environ:
        return environ[ENV_VAR] or None
    return system if Path(system).is_file() else None


def launch_options(
    base: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    extra_flags: tuple[str, ...] = (),
    system: str = SYSTEM_CHROMIUM,
) -> dict[str, Any]:
    """Playwright ``chromium.launch(**options)`` for pyrt: ``base`` (pytest-playwright's
    ``browser_type_launch_args``: ``--headed``, ``--slowmo``, ``--browser-channel``...) plus pyrt's
    flags after the ones ``base`` has, and the binary of the ``PYRT_CHROMIUM`` rule."""
    options = dict(base or {})
    flags = list(options.get("args") or [])
    flags += [flag for flag in (*CHROMIUM_FLAGS, *extra_flags) if flag not in flags]
    options["args"] = flags
    environ = os.environ if env is None else env
    explicit = bool(environ.get(ENV_VAR))
    if explicit or not ("channel" in options or "executable_path" in options):
        executable = chromium_executable(environ, system=system)
        if executable:
            options["executable_path"] = executable
            options.pop("channel", None)
    return options
