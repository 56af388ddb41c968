"""``EventSourceClient``: the browser's own ``EventSource``, made to survive (Pyodide).

The native object reconnects by itself after a dropped stream, but gives up for good on an HTTP
error or a wrong content type. :class:`pyrt.sse_policy.EventSourcePolicy` then re-creates it
with backoff, passing the last event id as a query parameter (a new ``EventSource`` sends no
``Last-Event-ID``). Handlers registered with :meth:`on` survive every re-creation. Each native
object gets its own proxies, released when it is replaced and all destroyed on close.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterable
from typing import Any, Self, cast

from pyrt.aio.driver import _SSEClient
from pyrt.backoff import Backoff
from pyrt.sse import ServerSentEvent
from pyrt.sse_policy import CreateSource, DestroySource, EventSourcePolicy, SSEAction

__all__ = ["EventSourceClient"]


class _Native:
    """One native ``EventSource`` and the proxies listening to it."""

    __slots__ = ("es", "listeners", "on_event", "source")

    def __init__(self, source: int, es: Any, on_event: Any) -> None:
        self.source = source
        self.es = es
        self.on_event = on_event  # one proxy, listening to "message" and every named type
        self.listeners: list[tuple[str, Any]] = []


class EventSourceClient(_SSEClient):
    """A native ``EventSource`` that comes back after HTTP errors, with backoff.

    ``with_credentials`` is the native option. ``resume_param`` names the query parameter that
    carries the last event id when the object is re-created (``None``: do not add one).
    ``event_types`` lists named event types to receive in ``async for`` even without an
    :meth:`on` handler (a native ``EventSource`` only reports the types someone listens to;
    ``"message"`` is always received).

    The native object cannot tell a 204 from a 500: every failure is retried until
    ``backoff.max_attempts`` is exhausted. Use :class:`FetchEventSource` for statuses, headers,
    stall detection and pausing in hidden tabs.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Outside Pyodide this builds :class:`pyrt.cpython.sse.CPythonEventSourceClient`, where
        ``httpx`` plays the native object, with the same arguments (as ``pathlib.Path(...)``
        builds a ``PosixPath``)."""
        if cls is EventSourceClient and sys.platform != "emscripten":
            from pyrt.cpython.sse import CPythonEventSourceClient

            return cast(Self, object.__new__(CPythonEventSourceClient))
        return object.__new__(cls)

    def __init__(
        self,
        url: str,
        *,
        with_credentials: bool = False,
        backoff: Backoff | None = None,
        resume_param: str | None = "lastEventId",
        last_event_id: str = "",
        event_types: Iterable[str] = (),
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(url)
        self.with_credentials = with_credentials
        self._engine: EventSourcePolicy = EventSourcePolicy(
            url,
            backoff=backoff or Backoff(),
            rng=rng,
            resume_param=resume_param,
            last_event_id=last_event_id,
        )
        self._extra_types = {t for t in event_types if t != "message"}
        self._native: _Native | None = None
        self._owner: Any = None

    # -- adapter

    def _types(self) -> set[str]:
        return (set(self._handlers) | self._extra_types) - {"message"}

    def _before_connect(self) -> None:
        from pyrt.browser.proxies import ProxyOwner

        self._owner = ProxyOwner()

    def _carry_out(self, action: SSEAction) -> None:
        if isinstance(action, CreateSource):
            self._create(action.source, action.url)
        elif isinstance(action, DestroySource):
            self._destroy(action.source)

    def _create(self, source: int, url: str) -> None:
        import js
        from pyodide.ffi import to_js

        options = to_js({"withCredentials": self.with_credentials}, dict_converter=js.Object.fromEntries)
        es = js.EventSource.new(url, options)
        policy = self._engine
        dispatch = self._dispatch

        def on_event(event: Any) -> None:
            last_id = event.lastEventId
            if policy.received(source, last_id):
                dispatch(ServerSentEvent(type=event.type, data=event.data, id=last_id))

        def on_open(_event: Any) -> None:
            policy.opened(source, self._now())
            self._pump()

        def on_error(_event: Any) -> None:
            policy.error(source, int(es.readyState), self._now())
            self._pump()

        native = _Native(source, es, self._owner.proxy(on_event))
        self._native = native
        for type, func in (("open", on_open), ("error", on_error)):
            proxy = self._owner.proxy(func)
            es.addEventListener(type, proxy)
            native.listeners.append((type, proxy))
        es.addEventListener("message", native.on_event)
        for type in self._types():
            es.addEventListener(type, native.on_event)

    def _destroy(self, source: int) -> None:
        native = self._native
        if native is None or native.source != source:
            return
        self._native = None
        es = native.es
        es.close()
        for type, proxy in native.listeners:
            es.removeEventListener(type, proxy)
        es.removeEventListener("message", native.on_event)
        for type in self._types():
            es.removeEventListener(type, native.on_event)
        proxies = [proxy for _, proxy in native.listeners] + [native.on_event]
        # This often runs inside one of these very proxies (the error listener): destroy them
        # once the current JS callback has returned.
        assert self._loop is not None
        owner = self._owner
        self._loop.call_soon(_release_all, owner, proxies)

    def _after_close(self) -> None:
        if self._native is not None:
            self._destroy(self._native.source)
        if self._owner is not None and self._loop is not None:
            # After the deferred releases above have run, nothing may remain.
            self._loop.call_soon(self._owner.destroy_all)

    def _type_added(self, type: str) -> None:
        if type != "message" and type not in self._extra_types and self._native is not None:
            self._native.es.addEventListener(type, self._native.on_event)

    def _type_removed(self, type: str) -> None:
        if type != "message" and type not in self._extra_types and self._native is not None:
            self._native.es.removeEventListener(type, self._native.on_event)


def _release_all(owner: Any, proxies: list[Any]) -> None:
    for proxy in proxies:
        owner.release(proxy)
