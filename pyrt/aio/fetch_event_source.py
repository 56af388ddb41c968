"""``FetchEventSource``: Server-Sent Events over ``fetch`` (the browser's, or ``httpx`` on CPython).

What the native ``EventSource`` cannot do: send headers (``Authorization`` instead of a token in
the URL), POST a body, back off with jitter, honour ``Retry-After``, stop on 401 instead of
hammering the server, notice a dead proxy (``stall_timeout``), and pause in hidden tabs. All
decisions live in :class:`pyrt.engine.sse.FetchSSEEngine`; this module connects the engine to a
:class:`~pyrt.ports.sse_transport.FetchTransport`.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyrt.aio import runtime
from pyrt.aio.handlers import AsyncHandlers
from pyrt.aio.sse_client import SSEClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.sse import AbortRequest, FetchSSEEngine, StartRequest, WhenHidden
from pyrt.engine.states import State
from pyrt.ports.sse_transport import Credentials, FetchRequest, FetchTransport

if TYPE_CHECKING:
    from pyrt.aio.share import Participant
    from pyrt.ports.services import Services
    from pyrt.share.channel import ShareChannel

__all__ = ["FetchEventSource", "HeadersSource"]

#: Headers for every request: a mapping, or a callable (sync or async) returning one, called
#: before every attempt.
HeadersSource = (
    Mapping[str, str] | Callable[[], Mapping[str, str]] | Callable[[], Awaitable[Mapping[str, str]]]
)
TokenSource = Callable[[], str] | Callable[[], Awaitable[str]]


class FetchEventSource(SSEClient):
    """An event stream read with ``fetch``; reconnects with backoff and ``Last-Event-ID``.

    ``headers`` are sent on every request, with ``Accept: text/event-stream`` and, once an event
    carried an id, ``Last-Event-ID``; a callable (sync or async) returning them is called before
    every attempt. ``token``: a callable (sync or async) returning a token, called before every
    attempt and sent as ``Authorization: Bearer <token>`` (the same callable a
    :class:`~pyrt.WebSocketClient` takes; a pyrt server ends the stream when the token expires
    and the reconnect carries a fresh one). A failing callable fails that attempt (reported,
    retried with backoff). ``method``/``body`` allow a POST (``body``: ``str`` or
    ``bytes``, sent again on every reconnect). ``credentials`` is fetch's option. ``backoff``
    paces reconnects; the server's ``retry:`` and ``Retry-After`` are floors under it.
    ``when_hidden="pause"`` closes the stream while the page is hidden (state PAUSED) and resumes
    it (from the last event id) when the page is visible again. ``stall_timeout``: seconds
    without a single byte (heartbeat comments count) after which the stream is presumed dead and
    reopened (``None``: never). ``transport``: where requests go (default: the runtime's, see
    :mod:`pyrt.aio.runtime`; :class:`pyrt.testing.FakeFetchTransport` in tests). ``services``:
    the runtime around the client — page events, timers, the share channel
    (:mod:`pyrt.ports.services`; default: those the transport carries, else the runtime's).
    ``async_handlers``: ``"concurrent"`` or ``"ordered"`` (see :mod:`pyrt.aio.handlers`).
    ``share``: a name: every client with the same name and URL in this browser (tabs, workers)
    reads one stream, held by one of them (see :mod:`pyrt.aio.sse_share`).

    Status policy: 200 + ``text/event-stream`` opens; 204 stops quietly; 408, 429 and 5xx retry;
    any other status, or another content type, stops with an :class:`~pyrt.errors.SSEError`
    that ``async for`` raises and ``on_error`` receives.
    """

    _engine: FetchSSEEngine

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: HeadersSource | None = None,
        body: str | bytes | None = None,
        credentials: Credentials = "same-origin",
        backoff: Backoff | None = None,
        when_hidden: WhenHidden = "keep",
        stall_timeout: float | None = 45.0,
        last_event_id: str = "",
        rng: Callable[[], float] = random.random,
        transport: FetchTransport | None = None,
        async_handlers: AsyncHandlers = "concurrent",
        share: str | ShareChannel | None = None,
        token: TokenSource | None = None,
        services: Services | None = None,
    ) -> None:
        if token is not None and not callable(token):
            raise TypeError(f"token must be a callable returning the token, got {type(token).__name__}")
        super().__init__(url, async_handlers, share, services)
        self.options: dict[str, Any] = {
            "method": method,
            "headers": headers,
            "body": body,
            "credentials": credentials,
            "backoff": backoff,
            "when_hidden": when_hidden,
            "stall_timeout": stall_timeout,
            "rng": rng,
            "async_handlers": async_handlers,
            "token": token,  # the shared stream is opened with the leader's
        }
        self.method = method
        self.body = body
        self.credentials: Credentials = credentials
        self.token = token
        self._dynamic_headers = headers if callable(headers) else None
        self._preparing: dict[int, asyncio.Task[None]] = {}
        self._engine = FetchSSEEngine(
            backoff=backoff or Backoff(),
            rng=rng,
            headers=None if callable(headers) else headers,
            last_event_id=last_event_id,
            when_hidden=when_hidden,
            stall_timeout=stall_timeout,
        )
        self._transport: FetchTransport | None = transport

    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) the stream set with ``retry:``, if any."""
        return self._engine.retry

    # -- the transport's reports (FetchEvents)

    def fetch_response(
        self, request: int, status: int, content_type: str | None, retry_after: str | None, wall_time: float
    ) -> bool:
        engine = self._engine
        read = engine.response(
            request, status, content_type, self._now(), retry_after=retry_after, wall_time=wall_time
        )
        self._pump()
        return read and engine.request == request and engine.state is State.OPEN

    def fetch_chunk(self, request: int, chunk: bytes) -> bool:
        engine = self._engine
        for event in engine.received(request, chunk, self._clock()):
            self._dispatch(event)
            if engine.state is not State.OPEN:
                return False  # a handler closed the client: deliver nothing more
        return engine.request == request and engine.state is State.OPEN

    def fetch_ended(self, request: int) -> None:
        self._engine.ended(request, self._now())
        self._pump()

    def fetch_failed(self, request: int, message: str) -> None:
        self._engine.failed(request, self._now(), message)
        self._pump()

    # -- the page (PageEvents)

    def page_online(self) -> None:
        self._check_wake()
        self._engine.online(self._now())
        self._pump()

    def page_visible(self) -> None:
        self._check_wake()
        self._engine.visibility(False, self._now())
        self._pump()

    def page_backgrounded(self) -> None:
        self._engine.visibility(True, self._now())
        self._pump()

    def page_hidden(self) -> None:
        """The page going away ends its requests by itself."""

    def page_shown(self) -> None:
        """Back from the back/forward cache: ``visibilitychange`` follows and decides."""

    # -- the driver's hooks

    def _default_transport(self) -> FetchTransport:
        return runtime.fetch_transport()

    def _shared_transport(self, participant: Participant, inner: Any) -> Any:
        from pyrt.aio.sse_share import SharedFetchTransport

        return SharedFetchTransport(participant, inner, self._ensure_loop(), self.page_online)

    def _attached(self, transport: FetchTransport) -> None:
        self._watch_page(self)

    def _perform(self, action: Any) -> None:
        transport = self._transport
        assert transport is not None
        if isinstance(action, StartRequest):
            if self.token is None and self._dynamic_headers is None:
                self._start(action.request, action.headers)
            else:
                task = self._ensure_loop().create_task(self._prepare(action))
                self._preparing[action.request] = task
        elif isinstance(action, AbortRequest):
            preparing = self._preparing.pop(action.request, None)
            if preparing is not None:
                preparing.cancel()
            transport.abort(action.request)
        else:
            self._perform_common(action)

    def _start(self, request: int, headers: dict[str, str]) -> None:
        assert self._transport is not None
        try:
            self._transport.start(
                FetchRequest(request, self.url, self.method, headers, self.body, self.credentials), self
            )
        except Exception as exc:  # a transport that cannot even start: a failed attempt, reported
            self._LOG.warning("pyrt FetchEventSource: could not start a request: %r", exc)
            self.fetch_failed(request, f"could not start the request: {type(exc).__name__}: {exc}")

    async def _prepare(self, action: StartRequest) -> None:
        """Resolve this attempt's headers and token, then start it (unless aborted meanwhile)."""
        try:
            headers: dict[str, str] = {}
            if self._dynamic_headers is not None:
                chosen = self._dynamic_headers()
                if inspect.isawaitable(chosen):
                    chosen = await chosen
                if not isinstance(chosen, Mapping):
                    raise TypeError(f"the headers callable returned {type(chosen).__name__}, not a mapping")
                headers.update({str(k): str(v) for k, v in chosen.items()})
            for name in [k for k in headers if k.lower() == "last-event-id"]:
                del headers[name]  # the resume point is the client's own, always
            ours = {k.lower() for k in headers}
            for name, value in action.headers.items():  # Accept unless chosen, Last-Event-ID
                if name.lower() not in ours:
                    headers[name] = value
            if self.token is not None:
                token = self.token()
                if inspect.isawaitable(token):
                    token = await token
                if not isinstance(token, str) or not token or "\n" in token or "\r" in token:
                    raise TypeError("the token callable must return a non-empty str on one line")
                for name in [k for k in headers if k.lower() == "authorization"]:
                    del headers[name]
                headers["Authorization"] = f"Bearer {token}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._preparing.pop(action.request, None) is not None:
                self.fetch_failed(action.request, f"preparing the request failed: {exc}")
            return
        if self._preparing.pop(action.request, None) is not None:
            self._start(action.request, headers)

    def _release(self) -> None:
        for task in self._preparing.values():
            task.cancel()
        self._preparing.clear()
        super()._release()
