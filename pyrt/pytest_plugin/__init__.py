"""Test real-time pages built on pyrt the way pyrt tests itself: a pytest plugin and its parts.

Install ``pyrt[testing]`` and the plugin's fixtures (``pyrt_server``, ``pyrt_page``, ``pyrt_proxy``
...; see :mod:`pyrt.pytest_plugin.plugin` and docs/testing.md) are there in every test. The
parts work without pytest too:

- :class:`ServerProcess`: pyrt's server as a subprocess on a free port (restart, log, metrics,
  memory); :class:`PeakRss`: a process's peak memory while a block runs;
- :class:`RedisServer`: a throw-away ``redis-server``;
- :class:`ChaosProxy`, :class:`ResetSchedule`: a TCP proxy that resets, blackholes, delays,
  throttles, refuses and cuts connections while traffic flows;
- :class:`PyodidePage`, :class:`PyodideError`: Chromium with Pyodide, pyrt and your files; run
  Python in it and get JSON back; :class:`AppPage`: any page of yours, with the same guard (no
  request leaves localhost) and the same diagnostics (:class:`PageNotServed` at once when the
  page or its runtime is not served);
- :func:`wait_until`: wait on a condition with a deadline;
- :class:`DeliveryChecker`, :func:`check_delivery`: exactly-once, order and gaps of what arrived.

This package never reaches the browser (``/pyrt.zip`` and pyrt's wheel for Pyodide leave it out),
and importing it is cheap: each name loads its module on first use.
"""

import typing as _typing

if _typing.TYPE_CHECKING:
    from pyrt.pytest_plugin.app_page import AppPage, PageNotServed
    from pyrt.pytest_plugin.chromium import launch_options
    from pyrt.pytest_plugin.delivery import DeliveryChecker, DeliveryReport, check_delivery
    from pyrt.pytest_plugin.memory import PeakRss
    from pyrt.pytest_plugin.proxy import ChaosProxy, ResetSchedule
    from pyrt.pytest_plugin.pyodide_page import PyodideError, PyodidePage
    from pyrt.pytest_plugin.redis_process import RedisServer, RedisUnavailable
    from pyrt.pytest_plugin.server_process import ServerProcess
    from pyrt.pytest_plugin.waiting import wait_until

__all__ = [
    "AppPage",
    "ChaosProxy",
    "DeliveryChecker",
    "DeliveryReport",
    "PageNotServed",
    "PeakRss",
    "PyodideError",
    "PyodidePage",
    "RedisServer",
    "RedisUnavailable",
    "ResetSchedule",
    "ServerProcess",
    "check_delivery",
    "launch_options",
    "wait_until",
]

_WHERE: dict[str, str] = {
    "AppPage": "pyrt.pytest_plugin.app_page",
    "ChaosProxy": "pyrt.pytest_plugin.proxy",
    "DeliveryChecker": "pyrt.pytest_plugin.delivery",
    "DeliveryReport": "pyrt.pytest_plugin.delivery",
    "PageNotServed": "pyrt.pytest_plugin.app_page",
    "PeakRss": "pyrt.pytest_plugin.memory",
    "PyodideError": "pyrt.pytest_plugin.pyodide_page",
    "PyodidePage": "pyrt.pytest_plugin.pyodide_page",
    "RedisServer": "pyrt.pytest_plugin.redis_process",
    "RedisUnavailable": "pyrt.pytest_plugin.redis_process",
    "ResetSchedule": "pyrt.pytest_plugin.proxy",
    "ServerProcess": "pyrt.pytest_plugin.server_process",
    "check_delivery": "pyrt.pytest_plugin.delivery",
    "launch_options": "pyrt.pytest_plugin.chromium",
    "wait_until": "pyrt.pytest_plugin.waiting",
}


def __getattr__(name: str) -> _typing.Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pyrt.pytest_plugin' has no attribute {name!r}")
    from importlib import import_module as _import

    value = getattr(_import(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
