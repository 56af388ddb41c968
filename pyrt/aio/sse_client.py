"""What the two SSE clients add to the driver: event types as events, and their lifecycle.

On an SSE client ``on(type, handler)`` takes any event type of the stream besides the driver's
events: ``on_message`` receives the events of type ``"message"`` (those without an ``event:``
field) and ``on("tick", f)`` those of type ``"tick"``. The names of the other events (``open``,
``error``, ``close``, ``state``, ``reconnecting``) mean the client's own events; a stream event
with one of those types reaches ``async for`` only.

Every lost connection is reported to ``on_error`` (as a browser's ``EventSource`` does) and to
``on_reconnecting(attempt, delay, reason)`` (``delay`` is ``None`` when a native ``EventSource``
reconnects on its own schedule). Stopping for good with an error reports it to ``on_error``
once more, then ``on_close``. Cancelling the task that iterates with ``async for`` closes the
client (and aborts the request).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pyrt.aio.driver import Driver
from pyrt.engine.sse import Closed, Disconnected, EventSourcePolicy, FetchSSEEngine, SSEStats
from pyrt.engine.states import State, StateChanged
from pyrt.errors import ShareUnavailable, SSEError
from pyrt.wire.sse import ServerSentEvent

if TYPE_CHECKING:
    from pyrt.aio.share import Participant, Sharing
    from pyrt.ports.services import Services
    from pyrt.share.channel import ShareChannel

__all__ = ["SSEClient"]

log = logging.getLogger("pyrt.sse")


class SSEClient(Driver):
    """The event API shared by :class:`~pyrt.EventSourceClient` and :class:`~pyrt.FetchEventSource`."""

    _OPEN_ENDED: ClassVar[bool] = True
    _CLOSE_ON_CANCEL: ClassVar[bool] = True
    _LOG: ClassVar[logging.Logger] = log
    _engine: FetchSSEEngine | EventSourcePolicy
    _transport: Any
    options: dict[str, Any]  # the constructor's options (a shared stream's leader makes its own client)

    def __init__(
        self,
        url: str,
        async_handlers: Any,
        share: str | ShareChannel | None = None,
        services: Services | None = None,
    ) -> None:
        if isinstance(share, str) and not share:
            raise ValueError("share must be a non-empty name")
        super().__init__(async_handlers, services)
        self.url = url
        self.share = share
        self._participant: Participant | None = None
        self._own = frozenset(self._EVENTS) - {"message"}  # the client's events, not stream types
        self._handlers_of = self._handlers.get  # bound once: looked up for every event
        self._call = self._handlers.call

    # -- public API

    @property
    def last_event_id(self) -> str:
        """The id a reconnect resumes from (``""``: none yet)."""
        return self._engine.last_event_id

    @property
    def stats(self) -> SSEStats:
        return self._engine.stats

    @property
    def sharing(self) -> Sharing | None:
        """With ``share``: the group, this client's role (``"leader"``, ``"follower"``,
        ``"joining"``) and how many tabs read the stream; ``None`` otherwise."""
        participant = self._participant
        return participant.sharing() if participant is not None else None

    @property
    def error(self) -> SSEError | None:
        """The error the client stopped with, if it stopped because of one."""
        error = self._closed.error if self._closed is not None else None
        return error if isinstance(error, SSEError) else None  # the SSE engines stop with SSE errors only

    def connect(self) -> Self:
        """Start connecting (call from code running in the event loop); returns the client.

        A URL the runtime can never reach (a relative one outside a browser) raises
        :class:`~pyrt.errors.RelativeURLError` here, and the client stays IDLE.
        """
        engine = self._engine
        if engine.state is not State.IDLE:
            engine.connect(self._now())  # raises the engine's own error: connect() twice
        loop = self._start_loop()
        self._attach()
        engine.connect(loop.time())
        self._pump()
        return self

    def close(self) -> None:
        """Stop for good: abort what is in flight, cancel reconnects, end ``async for`` (events
        received and not taken yet are dropped). Closing twice does nothing."""
        self._engine.close(self._now())
        if self._participant is not None:
            self._participant.leaving()  # never takes the shared connection over now
        self._stop_iterating()
        self._pump()

    # -- for the two clients

    def _attach(self) -> None:
        """Take the transport (the runtime's when none was given) and the services, check the
        URL (a relative one raises outside a browser) and attach, before the engine's first
        action."""
        transport = self._transport
        if transport is None:
            transport = self._default_transport()
        services = self._use_services(transport)
        transport.check_url(self.url)
        if self.share is not None and self._participant is None:
            transport = self._join(self.share, transport, services)
        self._transport = transport
        self._attached(transport)

    def _join(self, share: str | ShareChannel, inner: Any, services: Services) -> Any:
        """Read the group's shared stream (see :mod:`pyrt.aio.sse_share`); ``inner`` is this
        runtime's transport, the real one while this client leads."""
        from pyrt.aio.share import Participant
        from pyrt.aio.sse_share import lead

        if isinstance(share, str):
            try:
                channel = services.share_channel(f"pyrt:{type(self).__name__}:{share}:{self.url}")
            except ShareUnavailable as exc:
                error = ShareUnavailable(f"share={share!r}: {exc}; connecting alone")
                self._LOG.warning("pyrt sse: %s", error)
                self._handlers.emit("error", error)
                return inner
        else:
            channel = share
        end: Any = None

        def hub(participant: Participant) -> Any:
            return lead(participant, self, end, services)

        name = share if isinstance(share, str) else None
        participant = self._participant = Participant(channel, hub, self._ensure_loop(), name=name)
        end = self._shared_transport(participant, inner)
        participant.start()
        return end

    def _shared_transport(self, participant: Participant, inner: Any) -> Any:
        raise NotImplementedError

    def _default_transport(self) -> Any:
        raise NotImplementedError

    def _attached(self, transport: Any) -> None:
        """Hook: tell the transport what the client needs before the first request."""

    def _release(self) -> None:
        if self._transport is not None:
            self._transport.dispose()

    def _dispatch(self, event: ServerSentEvent) -> None:
        """Deliver one stream event to its handlers and to ``async for`` (a hot path)."""
        type = event.type
        if type not in self._own:
            handlers = self._handlers_of(type)
            if handlers:
                call = self._call
                for handler in tuple(handlers):
                    call(handler, event)
        buffer = self._buffer
        if buffer is not None:
            buffer.append(event)
            if self._waiters:
                self._wake()

    def _perform_common(self, action: Any) -> None:
        if isinstance(action, StateChanged):
            self._state_changed(action)
        elif isinstance(action, Disconnected):
            self._problem = str(action.error)
            self._handlers.emit("error", action.error)
            self._handlers.emit("reconnecting", action.attempt, action.delay, str(action.error))
        elif isinstance(action, Closed):
            if action.error is not None:
                self._handlers.emit("error", action.error)
            self._finished(action)

    def _tick(self, now: float) -> None:
        self._engine.tick(now)
