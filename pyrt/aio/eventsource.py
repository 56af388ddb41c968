"""``EventSourceClient``: a native ``EventSource``, made to survive.

The native object reconnects by itself after a dropped stream, but gives up for good on an HTTP
error or a wrong content type. :class:`pyrt.engine.sse.EventSourcePolicy` then re-creates it
with backoff, passing the last event id as a query parameter (a new ``EventSource`` sends no
``Last-Event-ID``). Handlers registered with :meth:`on` survive every re-creation. The native
objects come from an :class:`~pyrt.ports.sse_transport.EventSourceTransport`: the browser's own
``EventSource``, or on CPython ``httpx`` playing one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pyrt.aio import runtime
from pyrt.aio.handlers import AsyncHandlers
from pyrt.aio.sse_client import SSEClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.sse import CreateSource, DestroySource, EventSourcePolicy
from pyrt.ports.sse_transport import EventSourceTransport
from pyrt.wire.sse import ServerSentEvent

if TYPE_CHECKING:
    from pyrt.aio.share import Participant
    from pyrt.ports.services import Services
    from pyrt.share.channel import ShareChannel

__all__ = ["EventSourceClient"]


class EventSourceClient(SSEClient):
    """A native ``EventSource`` that comes back after HTTP errors, with backoff.

    ``with_credentials`` is the native option. ``resume_param`` names the query parameter that
    carries the last event id when the object is re-created (``None``: do not add one).
    ``event_types`` lists named event types to receive in ``async for`` even without an
    :meth:`on` handler (a native ``EventSource`` only reports the types someone listens to;
    ``"message"`` is always received). ``transport``: where native objects come from (default:
    the runtime's, see :mod:`pyrt.aio.runtime`; :class:`pyrt.testing.FakeEventSourceTransport`
    in tests). ``services``: the runtime around the client — timers, the share channel
    (:mod:`pyrt.ports.services`; default: those the transport carries, else the runtime's).
    ``async_handlers``: ``"concurrent"`` or ``"ordered"`` (see :mod:`pyrt.aio.handlers`).
    ``share``: a name: every client with the same name and URL in this browser (tabs, workers)
    reads one stream, held by one of them (see :mod:`pyrt.aio.sse_share`).

    The native object cannot tell a 204 from a 500: every failure is retried until
    ``backoff.max_attempts`` is exhausted. Use :class:`~pyrt.FetchEventSource` for statuses,
    headers, stall detection and pausing in hidden tabs.
    """

    _engine: EventSourcePolicy

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
        transport: EventSourceTransport | None = None,
        async_handlers: AsyncHandlers = "concurrent",
        share: str | ShareChannel | None = None,
        services: Services | None = None,
    ) -> None:
        super().__init__(url, async_handlers, share, services)
        self.options: dict[str, Any] = {
            "with_credentials": with_credentials,
            "backoff": backoff,
            "resume_param": resume_param,
            "event_types": tuple(event_types),
            "rng": rng,
            "async_handlers": async_handlers,
        }
        self.with_credentials = with_credentials
        self._engine = EventSourcePolicy(
            url,
            backoff=backoff or Backoff(),
            rng=rng,
            resume_param=resume_param,
            last_event_id=last_event_id,
        )
        self.event_types = frozenset(t for t in self.options["event_types"] if t != "message")
        self._transport: EventSourceTransport | None = transport

    def listened_types(self) -> set[str]:
        """The named event types the native object reports: ``event_types`` and those with a handler."""
        return (self._handlers.named() | self.event_types) - {"message"}

    # -- the transport's reports (EventSourceEvents)

    def source_opened(self, source: int) -> None:
        self._engine.opened(source, self._now())
        self._pump()

    def source_event(self, source: int, type: str, data: str, last_event_id: str) -> None:
        if self._engine.received(source, last_event_id):
            self._dispatch(ServerSentEvent(type=type, data=data, id=last_event_id))

    def source_error(self, source: int, for_good: bool, retry_after: float | None = None) -> None:
        self._engine.error(source, for_good, self._now(), retry_after)
        self._pump()

    # -- the driver's hooks

    def _default_transport(self) -> EventSourceTransport:
        return runtime.eventsource_transport()

    def _shared_transport(self, participant: Participant, inner: Any) -> Any:
        from pyrt.aio.sse_share import SharedEventSourceTransport

        return SharedEventSourceTransport(participant, inner, self._ensure_loop())

    def _attached(self, transport: EventSourceTransport) -> None:
        for type in self.listened_types():
            transport.listen(type)

    def _type_changed(self, type: str, present: bool) -> None:
        transport = self._transport
        if transport is None or type in self.event_types or type in self._own:
            return  # not attached yet (connect() listens), always listened, or not a stream type
        if present:
            transport.listen(type)
        else:
            transport.unlisten(type)

    def _perform(self, action: Any) -> None:
        transport = self._transport
        assert transport is not None
        if isinstance(action, CreateSource):
            try:
                transport.create(action.source, action.url, self.with_credentials, self)
            except Exception as exc:  # the object could not be made (a malformed URL...): a
                # failed attempt, retried with backoff; on_error hears the real cause first
                self._LOG.warning("pyrt EventSourceClient: could not create the EventSource: %r", exc)
                self._handlers.emit("error", exc)
                self._engine.error(action.source, True, self._now())
        elif isinstance(action, DestroySource):
            transport.destroy(action.source)
        else:
            self._perform_common(action)
