"""``FetchEventSource``: Server-Sent Events over ``fetch`` and a stream reader (Pyodide).

What the native ``EventSource`` cannot do: send headers (``Authorization`` instead of a token in
the URL), POST a body, back off with jitter, honour ``Retry-After``, stop on 401 instead of
hammering the server, notice a dead proxy (``stall_timeout``), and pause in hidden tabs. All
decisions live in :class:`pyrt.sse_policy.FetchSSEEngine`; this module only moves bytes between
``fetch`` and the engine.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, Self, cast

from pyrt.aio.driver import _SSEClient
from pyrt.backoff import Backoff
from pyrt.sse_policy import (
    AbortRequest,
    FetchSSEEngine,
    SSEAction,
    StartRequest,
    WhenHidden,
)

__all__ = ["FetchEventSource"]

Credentials = Literal["omit", "same-origin", "include"]


class FetchEventSource(_SSEClient):
    """An event stream read with ``fetch``; reconnects with backoff and ``Last-Event-ID``.

    ``headers`` are sent on every request, with ``Accept: text/event-stream`` and, once an event
    carried an id, ``Last-Event-ID``. ``method``/``body`` allow a POST (``body``: ``str`` or
    ``bytes``, sent again on every reconnect). ``credentials`` is fetch's option. ``backoff``
    paces reconnects; the server's ``retry:`` and ``Retry-After`` are floors under it.
    ``when_hidden="pause"`` closes the stream while the page is hidden and resumes it (from the
    last event id) when the page is visible again. ``stall_timeout``: seconds without a single
    byte (heartbeat comments count) after which the stream is presumed dead and reopened
    (``None``: never).

    Status policy: 200 + ``text/event-stream`` opens; 204 stops quietly; 408, 429 and 5xx retry;
    any other status, or another content type, stops with an :class:`~pyrt.sse_policy.SSEError`
    that ``async for`` raises and ``on_error`` receives.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Outside Pyodide this builds :class:`pyrt.cpython.sse.CPythonFetchEventSource`, the
        ``httpx`` adapter, with the same arguments (as ``pathlib.Path(...)`` builds a ``PosixPath``)."""
        if cls is FetchEventSource and sys.platform != "emscripten":
            from pyrt.cpython.sse import CPythonFetchEventSource

            return cast(Self, object.__new__(CPythonFetchEventSource))
        return object.__new__(cls)

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: str | bytes | None = None,
        credentials: Credentials = "same-origin",
        backoff: Backoff | None = None,
        when_hidden: WhenHidden = "keep",
        stall_timeout: float | None = 45.0,
        last_event_id: str = "",
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(url)
        self.method = method
        self.body = body
        self.credentials = credentials
        self._engine: FetchSSEEngine = FetchSSEEngine(
            backoff=backoff or Backoff(),
            rng=rng,
            headers=headers,
            last_event_id=last_event_id,
            when_hidden=when_hidden,
            stall_timeout=stall_timeout,
        )
        self._controller: tuple[int, Any] | None = None  # (request, AbortController)
        self._owner: Any = None  # ProxyOwner of the page listeners
        self._listeners: list[tuple[Any, str, Any]] = []  # (target, type, proxy)

    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) the stream set with ``retry:``, if any."""
        return self._engine.retry

    # -- adapter

    def _before_connect(self) -> None:
        import js

        from pyrt.browser.proxies import ProxyOwner

        self._owner = ProxyOwner()
        document = getattr(js, "document", None)
        if document is not None and self._engine.when_hidden == "pause":
            self._listen(document, "visibilitychange", self._on_visibility)
            self._engine.visibility(bool(document.hidden), self._now())
        if hasattr(js, "addEventListener"):
            self._listen(js, "online", self._on_online)

    def _listen(self, target: Any, type: str, func: Callable[[Any], None]) -> None:
        proxy = self._owner.proxy(func)
        target.addEventListener(type, proxy)
        self._listeners.append((target, type, proxy))

    def _after_close(self) -> None:
        for target, type, proxy in self._listeners:
            target.removeEventListener(type, proxy)
        self._listeners.clear()
        if self._owner is not None:
            self._owner.destroy_all()

    def _on_visibility(self, _event: Any) -> None:
        import js

        self._engine.visibility(bool(js.document.hidden), self._now())
        self._pump()

    def _on_online(self, _event: Any) -> None:
        self._engine.online(self._now())
        self._pump()

    def _carry_out(self, action: SSEAction) -> None:
        if isinstance(action, StartRequest):
            assert self._loop is not None
            task = self._loop.create_task(self._run(action.request, action.headers))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        elif (
            isinstance(action, AbortRequest)
            and self._controller is not None
            and self._controller[0] == action.request
        ):
            _, controller = self._controller
            self._controller = None
            controller.abort()

    async def _run(self, request: int, headers: dict[str, str]) -> None:
        """One request: fetch, report the response, read the body into the engine."""
        import js
        from pyodide.ffi import to_js

        engine = self._engine
        controller = js.AbortController.new()
        self._controller = (request, controller)
        init: dict[str, Any] = {
            "method": self.method,
            "headers": headers,
            "credentials": self.credentials,
            "cache": "no-store",
            "signal": controller.signal,
        }
        if self.body is not None:
            init["body"] = self.body if isinstance(self.body, str) else to_js(self.body)
        try:
            response = await js.fetch(self.url, to_js(init, dict_converter=js.Object.fromEntries))
        except Exception as exc:  # JsException (TypeError: Failed to fetch, AbortError) & co
            engine.failed(request, self._now(), _message(exc))
            self._pump()
            return
        read = engine.response(
            request,
            int(response.status),
            _header(response, "content-type"),
            self._now(),
            retry_after=_header(response, "retry-after"),
            wall_time=js.Date.now() / 1000,
        )
        self._pump()
        if not read:
            return
        dispatch = self._dispatch
        try:
            reader = response.body.getReader()
            while True:
                result = await reader.read()
                if result.done:
                    break
                events = engine.received(request, result.value.to_bytes(), self._now())
                for event in events:
                    dispatch(event)
                if engine.request != request:
                    return  # aborted (by a handler calling close(), a stall, ...)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            engine.failed(request, self._now(), _message(exc))
            self._pump()
            return
        engine.ended(request, self._now())
        self._pump()


def _header(response: Any, name: str) -> str | None:
    """A response header, or ``None`` (JS ``null`` arrives as a ``JsNull`` object, not ``None``)."""
    value = response.headers.get(name)
    return value if isinstance(value, str) else None


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else "network error"
