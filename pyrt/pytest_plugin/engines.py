"""The browser engines pyrt's fixtures drive, what each can do, and how each is started.

Three engines, from the system's packages (Debian: ``chromium``, ``firefox-esr``,
``webkit2gtk-driver`` + ``xvfb``):

========  =========================  ===============================================================
name      engine                     driven by
========  =========================  ===============================================================
chromium  Chromium                   Playwright (CDP), as pytest-playwright launches it
firefox   Firefox (ESR)              Playwright over WebDriver BiDi (``channel="moz-firefox"``)
webkit    WebKitGTK (``MiniBrowser``)  Selenium, classic WebDriver (``WebKitWebDriver``), under Xvfb
========  =========================  ===============================================================

Every engine can open pages, evaluate JavaScript (and so run Python in Pyodide), reload and close
tabs. What only some can do is a *capability* (:data:`CAPABILITIES`); asking an engine for one it
lacks raises :class:`MissingCapability`, which the pytest plugin reports as a skip naming the engine
and the capability. An engine that cannot start raises :class:`EngineUnavailable`.

The binaries follow ``PYRT_CHROMIUM`` (see :mod:`pyrt.pytest_plugin.chromium`), ``PYRT_FIREFOX``
(default: ``/usr/bin/firefox-esr``, else ``/usr/bin/firefox``) and ``PYRT_WEBKIT`` (the
``MiniBrowser`` of WebKitGTK; default: the one ``libwebkit2gtk-4.1`` installs).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "CAPABILITIES",
    "ENGINES",
    "ENGINE_NAMES",
    "Engine",
    "EngineUnavailable",
    "MissingCapability",
    "firefox_executable",
    "in_ci",
    "parse_engines",
    "webkit_executable",
]

#: What only some engines offer, and what each name means.
CAPABILITIES: dict[str, str] = {
    "playwright": "Playwright's Page and BrowserContext API",
    "contexts": "isolated browser contexts (each page its own storage)",
    "intercept": "request interception (the localhost guard, route handlers)",
    "console": "console and uncaught-error capture",
    "bypass_csp": "bypassing a page's Content-Security-Policy",
    "cdp": "the Chrome DevTools Protocol",
    "crash": "crashing a tab's renderer",
    "hidden_pages": "hidden pages (a background tab, document.hidden)",
}


@dataclass(frozen=True, slots=True)
class Engine:
    """One engine: its ``name`` (as ``--pyrt-engine`` spells it), a ``label`` for people, what
    drives it, and its capabilities."""

    name: str
    label: str
    driver: str
    capabilities: frozenset[str]

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str, hint: str = "") -> None:
        """Raise :class:`MissingCapability` unless this engine has ``capability``."""
        if capability not in self.capabilities:
            raise MissingCapability(self, capability, hint)

    def __str__(self) -> str:
        return self.name


_PLAYWRIGHT = frozenset({"playwright", "contexts", "intercept", "console", "bypass_csp"})

ENGINES: dict[str, Engine] = {
    "chromium": Engine("chromium", "Chromium", "Playwright (CDP)", _PLAYWRIGHT | {"cdp", "crash"}),
    "firefox": Engine("firefox", "Firefox", "Playwright (WebDriver BiDi)", _PLAYWRIGHT),
    "webkit": Engine("webkit", "WebKitGTK", "Selenium (classic WebDriver)", frozenset({"hidden_pages"})),
}
ENGINE_NAMES = tuple(ENGINES)


class MissingCapability(Exception):
    """The engine cannot do what was asked; the pytest plugin turns this into a skip that names
    the engine and the capability."""

    def __init__(self, engine: Engine, capability: str, hint: str = "") -> None:
        what = CAPABILITIES.get(capability, capability)
        message = f"{engine.name} ({engine.label}, driven by {engine.driver}) lacks {what}"
        super().__init__(message + (f": {hint}" if hint else ""))
        self.engine = engine
        self.capability = capability


class EngineUnavailable(Exception):
    """The engine cannot start here; the message says why and what to install."""


def in_ci(env: dict[str, str] | None = None) -> bool:
    """Whether this runs in CI (``CI=true``): there an engine that cannot start fails its tests."""
    value = (os.environ if env is None else env).get("CI", "")
    return value.strip().lower() in ("1", "true", "yes")


def parse_engines(values: Iterable[str]) -> tuple[str, ...]:
    """``["chromium,firefox", "webkit"]`` -> ``("chromium", "firefox", "webkit")``; ``all`` is all
    three; duplicates drop; an unknown name raises :class:`ValueError` listing the known ones."""
    chosen: list[str] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            names: Sequence[str] = ENGINE_NAMES if name == "all" else (name,)
            for one in names:
                if one not in ENGINES:
                    raise ValueError(f"unknown engine {one!r}: choose from {', '.join(ENGINE_NAMES)} or all")
                if one not in chosen:
                    chosen.append(one)
    return tuple(chosen)


def firefox_executable(env: dict[str, str] | None = None) -> str:
    """The Firefox binary: ``PYRT_FIREFOX``, else the system's ESR or Firefox; raises
    :class:`EngineUnavailable` when there is none."""
    environ = os.environ if env is None else env
    explicit = environ.get("PYRT_FIREFOX")
    candidates = [explicit] if explicit else ["/usr/bin/firefox-esr", "/usr/bin/firefox"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    found = shutil.which("firefox-esr") or shutil.which("firefox")
    if found and not explicit:
        return found
    raise EngineUnavailable(
        f"no Firefox at {', '.join(c for c in candidates if c)} "
        "(apt-get install firefox-esr, or set PYRT_FIREFOX to a Firefox binary)"
    )


def webkit_executable(env: dict[str, str] | None = None) -> str:
    """WebKitGTK's ``MiniBrowser``: ``PYRT_WEBKIT``, else the one ``libwebkit2gtk-4.1`` installs;
    raises :class:`EngineUnavailable` when there is none."""
    environ = os.environ if env is None else env
    explicit = environ.get("PYRT_WEBKIT")
    if explicit:
        if os.path.isfile(explicit):
            return explicit
        raise EngineUnavailable(f"PYRT_WEBKIT={explicit} does not exist")
    for pattern in ("/usr/lib/*/webkit2gtk-4.1/MiniBrowser", "/usr/lib/*/webkit2gtk-4.0/MiniBrowser"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise EngineUnavailable(
        "no WebKitGTK MiniBrowser (apt-get install webkit2gtk-driver xvfb xauth, "
        "or set PYRT_WEBKIT to a MiniBrowser binary)"
    )
