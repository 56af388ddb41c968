"""An event stream shared by every tab of a site: each client's link, and the real stream of the hub.

Browsers allow six HTTP/1.1 connections per origin, shared by every tab: the seventh tab's
stream (and any other request to the origin) waits. With ``share=``, one tab reads the stream
and the others get its events over their links (:mod:`pyrt.aio.share`):

- :class:`SharedFetchTransport` plays a ``fetch`` for a ``FetchEventSource``: a link opening is a
  ``200 text/event-stream`` response, each event comes as its SSE text (keep-alive comments
  too, so the client's ``stall_timeout`` sees the stream alive), a link lost is a failed
  request: the client reconnects with its ``Last-Event-ID`` — at once when a leader is ready;
- :class:`SharedEventSourceTransport` plays a native ``EventSource`` for an
  ``EventSourceClient``: a link lost is the object reconnecting by itself (``error`` while not
  ``CLOSED``), and the transport reopens the link as soon as a leader is ready;
- :class:`StreamUpstream` is the real stream of the leader's hub (:class:`pyrt.aio.hub.Hub` with
  an :class:`~pyrt.share.sse_relay.EventRelay`): a client of the same kind as the leader's (with
  its URL and options, resuming from the last event this participant saw), whose transport hands
  every event to the relay too, which catches each link up from its own last event id.

Each transport keeps the newest events its client got, so that when its participant leads, the
relay's ring starts with them and the other clients catch up from it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from pyrt.aio.driver import running_loop
from pyrt.aio.hub import Hub, HubServices
from pyrt.aio.share import Inner, Participant, SharedTransport
from pyrt.engine.states import State
from pyrt.ports.sse_transport import EventSourceTransport, FetchTransport
from pyrt.share.relay import EventTypes, KeepAlive
from pyrt.share.sse_relay import EventRelay
from pyrt.wire.sse import ServerSentEvent, SSEDecoder
from pyrt.wire.sse_encode import encode_comment, encode_event

if TYPE_CHECKING:
    from pyrt.aio.sse_client import SSEClient
    from pyrt.ports.services import Services
    from pyrt.ports.sse_transport import EventSourceEvents, FetchEvents, FetchRequest
    from pyrt.share.relay import LinkItem

__all__ = ["SharedEventSourceTransport", "SharedFetchTransport", "StreamUpstream", "lead"]

RING = 1000  # events a hub keeps for clients catching up


def lead(
    participant: Participant,
    leader: SSEClient,
    end: SharedFetchTransport | SharedEventSourceTransport,
    services: Services,
) -> Hub:
    """The hub of ``participant``, now leading: a relay over the ring of events ``end`` saw,
    and the real stream of ``leader``'s kind."""
    relay = EventRelay(RING, seen=tuple(end.seen))
    return Hub(participant, relay, services, lambda hub: StreamUpstream(hub, relay, leader, end))


class _StreamEnd(SharedTransport[Inner]):
    """What both shared SSE transports keep besides the link: the newest events their client got."""

    _seen: deque[ServerSentEvent] | None = None

    @property
    def seen(self) -> deque[ServerSentEvent]:
        if self._seen is None:
            self._seen = deque(maxlen=RING)
        return self._seen

    @property
    def last_event_id(self) -> str:
        return self.seen[-1].id if self.seen else ""


class SharedFetchTransport(_StreamEnd[FetchTransport]):
    """A ``FetchTransport`` whose requests are links to the leader's stream (module docstring)."""

    _request: FetchRequest | None = None  # the client's request in flight
    _events: FetchEvents | None = None

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        self._request, self._events = request, events
        self._open({"last": request.headers.get("Last-Event-ID", "")})

    def abort(self, request: int) -> None:
        if self._request is not None and self._request.id == request:
            self._request = None
            self._close_link()

    def dispose(self) -> None:
        self._request = None
        self._close_link()
        self.participant.close()
        self.inner.dispose()

    def link_opened(self, link: str, first: LinkItem | None) -> None:
        request, events = self._request, self._events
        if link != self.link or request is None or events is None:
            return
        if not events.fetch_response(request.id, 200, "text/event-stream", None, 0.0):
            self.abort(request.id)

    def link_item(self, link: str, item: LinkItem) -> None:
        request, events = self._request, self._events
        if link != self.link or request is None or events is None:
            return
        if isinstance(item, ServerSentEvent):
            self.seen.append(item)
            chunk = encode_event(item.data, item.type if item.type != "message" else None, item.id or None)
        elif isinstance(item, KeepAlive):
            chunk = encode_comment()
        else:
            return
        if not events.fetch_chunk(request.id, chunk.encode("utf-8")):
            self.abort(request.id)

    def link_closed(self, link: str, code: int, reason: str) -> None:
        request, events = self._request, self._events
        if link != self.link:
            return
        self.link = None
        self._request = None
        if request is not None and events is not None:
            events.fetch_failed(request.id, reason or "the shared stream was lost")


class SharedEventSourceTransport(_StreamEnd[EventSourceTransport]):
    """An ``EventSourceTransport`` whose native object is a link to the leader's stream."""

    def __init__(
        self, participant: Participant, inner: EventSourceTransport, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(participant, inner, loop, self._relink_if_waiting)
        self._source = 0
        self._events: EventSourceEvents | None = None
        self._types: set[str] = set()
        self._retry: asyncio.TimerHandle | None = None

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        self._source, self._events = source, events
        self._relink()

    def destroy(self, source: int) -> None:
        if source == self._source:
            self._source = 0
            self._close_link()

    def listen(self, type: str) -> None:
        self._types.add(type)
        self._listening()

    def unlisten(self, type: str) -> None:
        self._types.discard(type)
        self._listening()

    def dispose(self) -> None:
        self._source = 0
        if self._retry is not None:
            self._retry.cancel()
        self._close_link()
        self.participant.close()
        self.inner.dispose()

    def _listening(self) -> None:
        if self.link is not None:
            self.participant.link_send(self.link, EventTypes(tuple(sorted(self._types))))

    def _relink(self) -> None:
        self._open({"last": self.last_event_id, "types": sorted(self._types)})

    def link_opened(self, link: str, first: LinkItem | None) -> None:
        if link == self.link and self._events is not None and self._source:
            self._events.source_opened(self._source)

    def link_item(self, link: str, item: LinkItem) -> None:
        events = self._events
        if link != self.link or events is None or not self._source or not isinstance(item, ServerSentEvent):
            return
        self.seen.append(item)
        if item.type == "message" or item.type in self._types:
            events.source_event(self._source, item.type, item.data, item.id)

    def link_closed(self, link: str, code: int, reason: str) -> None:
        if link != self.link:
            return
        self.link = None
        if self._events is not None and self._source:
            self._events.source_error(self._source, False)  # as a native object reconnecting
            self._retry = self._loop.call_later(1.0, self._relink_if_waiting)

    def _relink_if_waiting(self) -> None:
        self._retry = None
        if self._source and self.link is None:
            self._relink()


class _HubFetchEvents:
    """The hub client's request reports, read first: the events (and keep-alive bytes) of the
    body go to the relay, then everything to the hub's client."""

    def __init__(self, upstream: StreamUpstream, events: FetchEvents) -> None:
        self.upstream = upstream
        self.events = events
        self.decoder = SSEDecoder()

    def fetch_response(
        self, request: int, status: int, content_type: str | None, retry_after: str | None, wall_time: float
    ) -> bool:
        return self.events.fetch_response(request, status, content_type, retry_after, wall_time)

    def fetch_chunk(self, request: int, chunk: bytes) -> bool:
        more = self.events.fetch_chunk(request, chunk)  # first: a closed client stops it
        events = self.decoder.feed(chunk)
        for event in events:
            self.upstream.event(event)
        if not events:
            self.upstream.alive()
        return more

    def fetch_ended(self, request: int) -> None:
        self.events.fetch_ended(request)

    def fetch_failed(self, request: int, message: str) -> None:
        self.events.fetch_failed(request, message)


class _HubSourceEvents:
    """The hub client's native object reports: each event to the relay too."""

    def __init__(self, upstream: StreamUpstream, events: EventSourceEvents) -> None:
        self.upstream = upstream
        self.events = events

    def source_opened(self, source: int) -> None:
        self.events.source_opened(source)

    def source_event(self, source: int, type: str, data: str, last_event_id: str) -> None:
        self.upstream.event(ServerSentEvent(type=type, data=data, id=last_event_id))
        self.events.source_event(source, type, data, last_event_id)

    def source_error(self, source: int, for_good: bool, retry_after: float | None = None) -> None:
        self.events.source_error(source, for_good, retry_after)


class _Lent:
    """The real transport, lent to the hub: what it carries passes the relay first, and giving
    it back stops what it carries but keeps it for the client."""

    def __init__(self, upstream: StreamUpstream, inner: Any, native: bool) -> None:
        self._upstream = upstream
        self._inner = inner
        self._native = native
        self._current: int | None = None

    def __getattr__(self, name: str) -> Any:  # check_url, abort, destroy, listen, unlisten
        return getattr(self._inner, name)

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        self._current = request.id
        self._inner.start(request, _HubFetchEvents(self._upstream, events))

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        self._current = source
        self._inner.create(source, url, with_credentials, _HubSourceEvents(self._upstream, events))

    def dispose(self) -> None:
        if self._current is not None:
            stop = self._inner.destroy if self._native else self._inner.abort
            stop(self._current)


class StreamUpstream:
    """The leader's real event stream (see the module docstring)."""

    what = "stream"

    def __init__(
        self,
        hub: Hub,
        relay: EventRelay,
        leader: SSEClient,
        end: SharedFetchTransport | SharedEventSourceTransport,
    ) -> None:
        self.hub = hub
        self.relay = relay
        self._native = isinstance(end, SharedEventSourceTransport)
        self._lent = _Lent(self, end.inner, self._native)
        self._loop = running_loop()
        self._state_now = State.IDLE
        options = {k: v for k, v in leader.options.items() if k != "share"}
        options["last_event_id"] = end.last_event_id or leader.last_event_id
        if not self._native:
            options["when_hidden"] = "keep"  # the leader hidden: the others still read
        make: Any = type(leader)  # a FetchEventSource or an EventSourceClient, as the leader
        services = HubServices(hub.services)
        self.client: SSEClient = make(leader.url, transport=self._lent, services=services, **options)
        self.page: Any = None if self._native else self.client  # a native object ignores the page
        self.client.on_state(self._state)

    def start(self) -> None:
        self.client.connect()

    def transport(self) -> str | None:
        """An event stream has one way in."""
        return None

    def forward(self, frame: Any) -> bool:
        """A stream carries nothing to the server (an event relay never asks)."""
        return False

    def listen(self, type: str) -> None:
        if self._native:
            self._lent.listen(type)  # the native object dispatches only what is listened to

    def close(self) -> None:
        self.client.close()

    # -- the real stream

    def event(self, event: ServerSentEvent) -> None:
        self.hub.run(self.relay.event(event))

    def alive(self) -> None:
        """Bytes without an event (a keep-alive comment): the links hear the stream is alive."""
        self.hub.run(self.relay.keep_alive(self._loop.time()))

    def _state(self, new: State) -> None:
        old, self._state_now = self._state_now, new
        if self.hub.closing:
            return
        if new is State.OPEN:
            self.hub.run(self.relay.stream_opened())
            self.hub.ready()
        elif old is State.OPEN:
            self.hub.lost(1006, self._lost_reason())

    def _lost_reason(self) -> str:
        """Why the links lose the stream: why the real one was lost (the hub client's last
        error, without its type), so that a tab reads what an unshared client would."""
        error = self.client.stats.last_error
        return error.partition(": ")[2] or error if error else "the stream from the server was lost"
