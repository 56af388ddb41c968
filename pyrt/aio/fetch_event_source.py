"""``FetchEventSource``: Server-Sent Events over ``fetch`` (the browser's, or ``httpx`` on CPython).

What the native ``EventSource`` cannot do: send headers (``Authorization`` instead of a token in
the URL), POST a body, back off with jitter, honour ``Retry-After``, stop on 401 instead of
hammering the server, notice a dead proxy (``stall_timeout``), and pause in hidden tabs. All
decisions live in :class:`pyrt.sse_policy.FetchSSEEngine`; this module connects the engine to a
:class:`~pyrt.sse_transport.FetchTransport`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyrt.aio import runtime
from pyrt.aio.handlers import AsyncHandlers
from pyrt.aio.sse_client import SSEClient
from pyrt.backoff import Backoff
from pyrt.sse_policy import AbortRequest, FetchSSEEngine, StartRequest, WhenHidden
from pyrt.sse_transport import Credentials, FetchRequest, FetchTransport
from pyrt.states import State

if TYPE_CHECKING:
    from pyrt.aio.share import Participant
    from pyrt.share_channel import ShareChannel

__all__ = ["FetchEventSource"]


class FetchEventSource(SSEClient):
    """An event stream read with ``fetch``; reconnects with backoff and ``Last-Event-ID``.

    ``headers`` are sent on every request, with ``Accept: text/event-stream`` and, once an event
    carried an id, ``Last-Event-ID``. ``method``/``body`` allow a POST (``body``: ``str`` or
    ``bytes``, sent again on every reconnect). ``credentials`` is fetch's option. ``backoff``
    paces reconnects; the server's ``retry:`` and ``Retry-After`` are floors under it.
    ``when_hidden="pause"`` closes the stream while the page is hidden (state PAUSED) and resumes
    it (from the last event id) when the page is visible again. ``stall_timeout``: seconds
    without a single byte (heartbeat comments count) after which the stream is presumed dead and
    reopened (``None``: never). ``transport``: where requests go (default: the runtime's, see
    :mod:`pyrt.aio.runtime`; :class:`pyrt.testing.FakeFetchTransport` in tests).
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
        headers: Mapping[str, str] | None = None,
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
    ) -> None:
        super().__init__(url, async_handlers, share)
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
        }
        self.method = method
        self.body = body
        self.credentials: Credentials = credentials
        self._engine = FetchSSEEngine(
            backoff=backoff or Backoff(),
            rng=rng,
            headers=headers,
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

        return SharedFetchTransport(participant, inner, self._ensure_loop())

    def _attached(self, transport: FetchTransport) -> None:
        transport.watch_page(self)

    def _perform(self, action: Any) -> None:
        transport = self._transport
        assert transport is not None
        if isinstance(action, StartRequest):
            request = FetchRequest(
                action.request, self.url, self.method, action.headers, self.body, self.credentials
            )
            transport.start(request, self)
        elif isinstance(action, AbortRequest):
            transport.abort(action.request)
        else:
            self._perform_common(action)
