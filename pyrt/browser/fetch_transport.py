"""The browser transport of :class:`~pyrt.FetchEventSource`: ``fetch`` and a stream sink.

One request at a time, each with its own ``AbortController``: :meth:`BrowserFetchTransport.abort`
aborts the fetch (and the read of its body), after which nothing more is reported about it. The
page's events are the runtime's services (:mod:`pyrt.browser.services`).

The body is piped (``pipeTo``) into a ``WritableStream`` whose ``write``, ``close`` and ``abort``
call Python, rather than read by awaiting ``reader.read()`` from Python: WebKitGTK (2.50) never
settles a read awaited from Pyodide when the server resets the connection, so the stream looked
alive until ``stall_timeout``; its sink's ``abort`` is called at once, in every engine. The sink's
three proxies belong to the request and are destroyed when its body ends or fails, and by
:meth:`~BrowserFetchTransport.abort` itself: a client that is closed holds none, whenever the engine
gets round to calling the sink (a turn of the event loop later in every engine tested).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import js
from pyodide.ffi import to_js

from pyrt.browser.proxies import ProxyOwner
from pyrt.ports.sse_transport import FetchEvents, FetchRequest

__all__ = ["BrowserFetchTransport"]


class BrowserFetchTransport:
    """``fetch`` for :class:`~pyrt.FetchEventSource` (Pyodide only)."""

    def __init__(self) -> None:
        self._current: tuple[int, Any] | None = None  # (request id, its AbortController)
        self._tasks: set[asyncio.Task[None]] = set()
        # request id -> the owner of its body's sink proxies, and what ends the wait for the body
        self._sinks: dict[int, tuple[ProxyOwner, Callable[[str | None], None]]] = {}

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
        sink = self._sinks.pop(request, None)
        if sink is not None:
            owner, settle = sink
            owner.destroy_all()  # a call the pipe still makes fails inside the pipe, which is caught
            settle(None)  # nothing more is reported: the request is no longer live

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
        owner = ProxyOwner()
        ended: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def settle(outcome: str | None) -> None:
            if not ended.done():
                ended.set_result(outcome)

        def write(chunk: Any, *_: Any) -> None:
            if not ended.done() and not events.fetch_chunk(number, chunk.to_bytes()):
                # Not to be read further (a handler called close(), a stall...): the abort ends
                # the pipe, whose call of ``abort`` settles this request quietly.
                controller.abort()

        def close(*_: Any) -> None:
            settle(None)

        def abort(reason: Any = None, *_: Any) -> None:
            settle(_message(reason) if reason is not None else "network error")

        try:
            sink = js.WritableStream.new(
                to_js(
                    {"write": owner.proxy(write), "close": owner.proxy(close), "abort": owner.proxy(abort)},
                    dict_converter=js.Object.fromEntries,
                )
            )
            self._sinks[number] = (owner, settle)
            # The pipe's own promise is not awaited (see the module docstring); a builtin is its
            # rejection handler, so an aborted pipe is not an unhandled rejection and owns no proxy.
            response.body.pipeTo(sink).catch(js.Boolean)
            outcome = await ended
        except Exception as exc:  # no sink could be made, or no pipe started (a body of null)
            outcome = _message(exc)
        finally:
            self._sinks.pop(number, None)
            owner.destroy_all()
        if not self._done(number):
            return  # aborted: nothing more is reported
        if outcome is None:
            events.fetch_ended(number)
        else:
            events.fetch_failed(number, outcome)


def _header(response: Any, name: str) -> str | None:
    """A response header, or ``None`` (JS ``null`` arrives as a ``JsNull`` object, not ``None``)."""
    value = response.headers.get(name)
    return value if isinstance(value, str) else None


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else "network error"
