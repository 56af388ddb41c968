"""A page imports pyrt from the bytecode in ``/pyrt.zip``: nothing of pyrt is compiled in the browser."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import httpx

from pyrt.pytest_plugin.pyodide_page import PyodidePage
from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.pytest_plugin.waiting import wait_until


def served_names(server: ServerProcess) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(httpx.get(server.url + "/pyrt.zip").content)).namelist()


def test_a_page_imports_the_client_without_compiling_pyrt(
    pyrt_server: ServerProcess, pyrt_new_page: Callable[..., PyodidePage]
) -> None:
    # The server compiles in the background when it starts (from its cache on disk after that).
    wait_until(lambda: "pyrt/__pycache__/__init__.cpython-314.pyc" in served_names(pyrt_server), timeout=240)
    page = pyrt_new_page(pyrt_server)
    compiled = page.run(
        """
import importlib._bootstrap_external as external, pathlib, sys
compiled = []
original = external.SourceLoader.source_to_code
def source_to_code(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return original(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = source_to_code
try:
    from pyrt import EventSourceClient, WebSocketClient
    import pyrt.browser.ws_transport, pyrt.browser.services, pyrt.browser.eventsource_transport
finally:
    external.SourceLoader.source_to_code = original
cached = pathlib.Path(sys.modules["pyrt.aio.websocket"].__spec__.cached)
{"compiled": [path for path in compiled if "/pyrt/" in path], "cached": cached.name}
"""
    )
    assert compiled == {"compiled": [], "cached": "websocket.cpython-314.pyc"}
