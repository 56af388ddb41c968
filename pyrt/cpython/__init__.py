"""CPython adapters: the transports of the clients over real sockets (``websockets`` and ``httpx``).

Outside Pyodide, :class:`~pyrt.WebSocketClient`, :class:`~pyrt.FetchEventSource` and
:class:`~pyrt.EventSourceClient` get these transports from :mod:`pyrt.aio.runtime` when they
connect, and drive the same pure engines as in the browser:

- :class:`~pyrt.cpython.ws_transport.CPythonTransport` — a WebSocket transport over the
  ``websockets`` asyncio client;
- :class:`~pyrt.cpython.fetch_transport.CPythonFetchTransport` and
  :class:`~pyrt.cpython.eventsource_transport.CPythonEventSourceTransport` — the SSE transports
  over ``httpx`` streaming responses;
- :class:`~pyrt.cpython.services.CPythonServices` — the runtime around the clients: no page,
  the loop's own timers, no sharing, and ``persist=`` in :class:`~pyrt.cpython.storage.FileStore`
  (one journal file per key; :class:`~pyrt.cpython.storage.FileStorage`: one whole JSON text per
  key, for ``storage=``). ``services=CPythonServices(storage_dir=...)`` keeps the files elsewhere.

Install the dependencies with ``pip install "pyrt[cpython]"``. They are imported only when a
client first connects, so ``import pyrt`` needs nothing but the standard library.
"""

from pyrt.cpython.services import CPythonServices
from pyrt.cpython.storage import FileStorage, FileStore, default_directory
from pyrt.engine.urls import http_url, websocket_url
from pyrt.errors import RelativeURLError

__all__ = [
    "CPythonServices",
    "FileStorage",
    "FileStore",
    "RelativeURLError",
    "default_directory",
    "http_url",
    "websocket_url",
]
