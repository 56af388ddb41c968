"""The SSE clients on CPython: the same engines as in the browser, over ``httpx`` streaming.

Outside Pyodide, ``FetchEventSource(...)`` and ``EventSourceClient(...)`` build the classes
below (subclasses taking the same arguments, the way ``pathlib.Path(...)`` builds a
``PosixPath``), so user code does not change between runtimes.

- :class:`CPythonFetchEventSource` carries out the :class:`~pyrt.sse_policy.FetchSSEEngine`'s
  ``StartRequest``/``AbortRequest`` with ``httpx``: one request task at a time, aborted by
  cancelling it. Statuses, ``Retry-After``, ``retry:``, ``Last-Event-ID``, backoff and stall
  detection behave exactly as in the browser, because the engine decides them.
- :class:`CPythonEventSourceClient` plays the browser's native ``EventSource`` for the
  :class:`~pyrt.sse_policy.EventSourcePolicy`: GET with ``Accept: text/event-stream``; after a
  dropped stream or a network error it reconnects by itself after the stream's ``retry:`` (3 s
  by default), sending ``Last-Event-ID``; on a status other than 200, or another content type,
  it gives up (the policy then re-creates it with backoff and ``?lastEventId=``).

What browser-only options mean here: ``when_hidden`` never pauses (there is no page);
``credentials="omit"`` keeps no cookies, the other values keep the cookies the server sets for
this client's own requests (like same-origin requests in a browser); ``with_credentials`` has
no effect; a relative URL raises :class:`~pyrt.urls.RelativeURLError` from
``connect()``. Each client has its own ``httpx.AsyncClient`` (created by ``connect()``, closed
with the client); the TLS context is shared, so creating hundreds of clients is cheap.
"""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

from pyrt.aio.eventsource import EventSourceClient
from pyrt.aio.fetch_event_source import FetchEventSource
from pyrt.sse import ServerSentEvent, SSEDecoder
from pyrt.sse_policy import (
    AbortRequest,
    CreateSource,
    DestroySource,
    ReadyState,
    SSEAction,
    SSEState,
    StartRequest,
    classify_response,
)
from pyrt.urls import http_url

if TYPE_CHECKING:
    import httpx

__all__ = ["NATIVE_RECONNECT", "CPythonEventSourceClient", "CPythonFetchEventSource", "new_http_client"]

log = logging.getLogger("pyrt.sse")

#: Seconds a native ``EventSource`` waits before reconnecting when the stream set no ``retry:``
#: (Chromium's default).
NATIVE_RECONNECT = 3.0


@functools.cache
def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - the test environment has httpx
        raise ImportError(
            'pyrt\'s CPython SSE clients need the httpx library: pip install "pyrt[cpython]"'
        ) from exc
    return httpx


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context, made once (it loads the CA bundle, which is slow)."""
    context: ssl.SSLContext = _httpx().create_ssl_context()
    return context


def new_http_client(*, cookies: bool = True) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` as the SSE clients use it: no timeouts (the engine detects stalls),
    redirects followed (as ``fetch`` does), the shared TLS context, and with ``cookies=False`` a
    cookie jar that keeps nothing."""
    lib = _httpx()
    jar = None
    if not cookies:
        jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    client: httpx.AsyncClient = lib.AsyncClient(
        timeout=None, follow_redirects=True, verify=_ssl_context(), cookies=jar
    )
    return client


def _message(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _with_default(headers: dict[str, str], name: str, value: str) -> dict[str, str]:
    if not any(key.lower() == name.lower() for key in headers):
        headers[name] = value
    return headers


class _HttpOwner:
    """The request task and the ``httpx`` client of one SSE client (mixin)."""

    _loop: asyncio.AbstractEventLoop | None
    _tasks: set[asyncio.Task[Any]]
    _http: httpx.AsyncClient | None = None
    _current: tuple[int, asyncio.Task[None]] | None = None

    def _start(self, number: int, coro: Any) -> None:
        assert self._loop is not None
        task: asyncio.Task[None] = self._loop.create_task(coro)
        self._current = (number, task)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stop(self, number: int | None = None) -> None:
        current = self._current
        if current is not None and (number is None or current[0] == number):
            self._current = None
            current[1].cancel()

    def _close_http(self) -> None:
        self._stop()
        http, self._http = self._http, None
        if http is not None and self._loop is not None and not self._loop.is_closed():
            task = self._loop.create_task(http.aclose())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class CPythonFetchEventSource(_HttpOwner, FetchEventSource):
    """:class:`~pyrt.FetchEventSource` over ``httpx`` (what ``FetchEventSource(...)`` builds on
    CPython). Same arguments and behaviour; see the module docstring for the differences."""

    _http_url = ""

    def _before_connect(self) -> None:
        self._http_url = http_url(self.url)
        self._http = new_http_client(cookies=self.credentials != "omit")

    def _after_close(self) -> None:
        self._close_http()

    def _carry_out(self, action: SSEAction) -> None:
        if isinstance(action, StartRequest):
            self._start(action.request, self._run(action.request, action.headers))
        elif isinstance(action, AbortRequest):
            self._stop(action.request)

    async def _run(self, request: int, headers: dict[str, str]) -> None:
        """One request: send it, report the response, read the body into the engine."""
        engine = self._engine
        http = self._http
        assert http is not None
        headers = _with_default(dict(headers), "Cache-Control", "no-cache")
        if isinstance(self.body, str):
            _with_default(headers, "Content-Type", "text/plain;charset=UTF-8")  # as fetch does
        try:
            stream = http.stream(self.method, self._http_url, headers=headers, content=self.body)
            async with stream as response:
                read = engine.response(
                    request,
                    response.status_code,
                    response.headers.get("content-type"),
                    self._now(),
                    retry_after=response.headers.get("retry-after"),
                    wall_time=time.time(),
                )
                self._pump()
                if not read:
                    return
                dispatch = self._dispatch
                async for chunk in response.aiter_bytes():
                    for event in engine.received(request, chunk, self._now()):
                        dispatch(event)
                    if engine.request != request or engine.state is not SSEState.OPEN:
                        return  # aborted (a handler called close(), a stall, ...)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # httpx.TransportError (refused, reset, incomplete body) & co
            engine.failed(request, self._now(), _message(exc))
            self._pump()
            return
        engine.ended(request, self._now())
        self._pump()


class CPythonEventSourceClient(_HttpOwner, EventSourceClient):
    """:class:`~pyrt.EventSourceClient` with ``httpx`` playing the native ``EventSource`` (what
    ``EventSourceClient(...)`` builds on CPython). See the module docstring."""

    def _before_connect(self) -> None:
        http_url(self.url)
        self._http = new_http_client()

    def _after_close(self) -> None:
        self._close_http()

    def _carry_out(self, action: SSEAction) -> None:
        if isinstance(action, CreateSource):
            self._start(action.source, self._play_native(action.source, action.url))
        elif isinstance(action, DestroySource):
            self._stop(action.source)

    def _type_added(self, type: str) -> None:
        """Nothing to attach: every event's type is checked when it arrives."""

    def _type_removed(self, type: str) -> None:
        """Nothing to detach."""

    async def _play_native(self, source: int, url: str) -> None:
        """What a browser's ``EventSource`` object does, until the policy destroys it."""
        policy = self._engine
        http = self._http
        assert http is not None
        decoder = SSEDecoder()  # a new EventSource starts with no last event id
        dispatch = self._dispatch
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if decoder.last_event_id:
                headers["Last-Event-ID"] = decoder.last_event_id
            try:
                async with http.stream("GET", url, headers=headers) as response:
                    verdict = classify_response(response.status_code, response.headers.get("content-type"))
                    if verdict != "open":  # the native object fails for good: readyState CLOSED
                        policy.error(source, ReadyState.CLOSED, self._now())
                        self._pump()
                        return
                    policy.opened(source, self._now())
                    self._pump()
                    async for chunk in response.aiter_bytes():
                        events = decoder.feed(chunk)
                        if not events:
                            continue
                        wanted = self._types()
                        for event in events:
                            if (event.type == "message" or event.type in wanted) and policy.received(
                                source, event.id
                            ):
                                dispatch(ServerSentEvent(type=event.type, data=event.data, id=event.id))
                        if policy.source != source or policy.state is SSEState.CLOSED:
                            return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a network error: the native object reconnects by itself
                log.debug("pyrt EventSource %s: %s", url, _message(exc))
            decoder.end()
            policy.error(source, ReadyState.CONNECTING, self._now())
            self._pump()
            if policy.source != source or policy.state is SSEState.CLOSED:
                return
            retry = decoder.retry
            await asyncio.sleep(retry / 1000 if retry is not None else NATIVE_RECONNECT)
