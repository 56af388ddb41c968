"""The browser transport of :class:`~pyrt.FetchEventSource`: ``fetch`` and a stream reader.

One request at a time, each with its own ``AbortController``: :meth:`BrowserFetchTransport.abort`
aborts the fetch (and the read of its body), after which nothing more is reported about it. The
page's events are the runtime's services (:mod:`pyrt.browser.services`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import js
from pyodide.ffi import to_js

from pyrt.ports.sse_transport import FetchEvents, FetchRequest

__all__ = ["BrowserFetchTransport"]


class BrowserFetchTransport:
    """``fetch`` for :class:`~pyrt.FetchEventSource` (Pyodide only)."""

    def __init__(self) -> None:
        self._current: tuple[int, Any] | None = None  # (request id, its AbortController)
        self._tasks: set[asyncio.Task[None]] = set()

    def check_url(self, url: str) -> None:
        """Any URL: ``fetch`` resolves a relative one against the page."""

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        controller = js.AbortController.new()
        self._current = (request.id, controller)
        task = asyncio.get_running_loop().create_task(self._run(request, controller, events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def abort(self, request: int) -> None:
        current = self._current
        if current is not None and current[0] == request:
            self._current = None
            current[1].abort()

    def dispose(self) -> None:
        if self._current is not None:
            self.abort(self._current[0])

    def _live(self, request: int) -> bool:
        return self._current is not None and self._current[0] == request

    def _done(self, request: int) -> bool:
        """Forget ``request`` (it ended by itself); False when it was aborted already."""
        if not self._live(request):
            return False
        self._current = None
        return True

    async def _run(self, request: FetchRequest, controller: Any, events: FetchEvents) -> None:
        """One request: fetch, report the response, read the body."""
        number = request.id
        init: dict[str, Any] = {
            "method": request.method,
            "headers": request.headers,
            "credentials": request.credentials,
            "cache": "no-store",
            "signal": controller.signal,
        }
        if request.body is not None:
            init["body"] = request.body if isinstance(request.body, str) else to_js(request.body)
        try:
            response = await js.fetch(request.url, to_js(init, dict_converter=js.Object.fromEntries))
        except Exception as exc:  # JsException (TypeError: Failed to fetch, AbortError) & co
            if self._done(number):
                events.fetch_failed(number, _message(exc))
            return
        if not self._live(number):
            return
        read = events.fetch_response(
            number,
            int(response.status),
            _header(response, "content-type"),
            _header(response, "retry-after"),
            js.Date.now() / 1000,
        )
        if not read:
            self.abort(number)  # not to be read: let the connection go
            return
        try:
            reader = response.body.getReader()
            while True:
                result = await reader.read()
                if result.done:
                    break
                if not events.fetch_chunk(number, result.value.to_bytes()):
                    return  # aborted (a handler called close(), a stall, ...)
        except Exception as exc:
            if self._done(number):
                events.fetch_failed(number, _message(exc))
            return
        if self._done(number):
            events.fetch_ended(number)


def _header(response: Any, name: str) -> str | None:
    """A response header, or ``None`` (JS ``null`` arrives as a ``JsNull`` object, not ``None``)."""
    value = response.headers.get(name)
    return value if isinstance(value, str) else None


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else "network error"
