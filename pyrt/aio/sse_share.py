"""An event stream shared by every tab of a site: each client's link, and the leader's hub.

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
- :class:`StreamHub` is the leader's side: a client of the same kind on the real stream (with the
  leader client's URL and options, resuming from the last event this participant saw), whose
  transport hands every event to an :class:`~pyrt.share.sse_relay.EventRelay` too, which catches each
  link up from its own last event id.

Each transport keeps the newest events its client got, so that when its participant leads, the
relay's ring starts with them and the other clients catch up from it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from pyrt.aio.share import HubPage, PageFanOut, Participant
from pyrt.engine.states import State
from pyrt.share.sse_relay import CloseStream, Deliver, EventRelay, EventRelayAction, OpenStream
from pyrt.wire.sse import ServerSentEvent, SSEDecoder
from pyrt.wire.sse_encode import encode_comment, encode_event

if TYPE_CHECKING:
    from pyrt.aio.sse_client import SSEClient
    from pyrt.ports.sse_transport import (
        EventSourceEvents,
        EventSourceTransport,
        FetchEvents,
        FetchRequest,
        FetchTransport,
    )
    from pyrt.ports.transport import PageEvents

__all__ = ["SharedEventSourceTransport", "SharedFetchTransport", "StreamHub"]

RING = 1000  # events a hub keeps for clients catching up
KEEPALIVE_EVERY = 0.05  # at least this many seconds between keep-alive comments forwarded


def _message_event(message: dict[str, Any]) -> ServerSentEvent:
    kind, data, ident = message.get("y"), message.get("d"), message.get("i")
    return ServerSentEvent(
        type=kind if isinstance(kind, str) else "message",
        data=data if isinstance(data, str) else "",
        id=ident if isinstance(ident, str) else "",
    )


class _LinkEnd(PageFanOut):
    """What both shared SSE transports do: one link at a time, the newest events, the page."""

    def __init__(self, participant: Participant, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.participant = participant
        self._loop = loop
        self.link: str | None = None
        self.seen: deque[ServerSentEvent] = deque(maxlen=RING)
        participant.add_end(self)

    @property
    def last_event_id(self) -> str:
        return self.seen[-1].id if self.seen else ""

    def _open(self, extra: dict[str, Any]) -> None:
        self._close_link()
        link = self.link = self.participant.new_link()
        self.participant.open_link(link, self, extra)

    def _close_link(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            self.participant.close_link(link, 1000, "")

    def link_opened(self, link: str) -> None:
        raise NotImplementedError

    def link_message(self, link: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def link_closed(self, link: str, code: int, reason: str) -> None:
        raise NotImplementedError


class SharedFetchTransport(_LinkEnd):
    """A ``FetchTransport`` whose requests are links to the leader's stream (module docstring)."""

    def __init__(
        self, participant: Participant, inner: FetchTransport, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(participant, loop)
        self.inner = inner
        self._request: FetchRequest | None = None
        self._events: FetchEvents | None = None

    def check_url(self, url: str) -> None:
        self.inner.check_url(url)

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        self._request, self._events = request, events
        self._open({"last": request.headers.get("Last-Event-ID", "")})

    def abort(self, request: int) -> None:
        if self._request is not None and self._request.id == request:
            self._request = None
            self._close_link()

    def watch_page(self, events: PageEvents) -> None:
        self._page = events
        self.inner.watch_page(self)

    def dispose(self) -> None:
        self._request = None
        self._close_link()
        self.participant.close()
        self.inner.dispose()

    def link_opened(self, link: str) -> None:
        request, events = self._request, self._events
        if link != self.link or request is None or events is None:
            return
        if not events.fetch_response(request.id, 200, "text/event-stream", None, 0.0):
            self.abort(request.id)

    def link_message(self, link: str, message: dict[str, Any]) -> None:
        request, events = self._request, self._events
        if link != self.link or request is None or events is None:
            return
        if message["t"] == "event":
            event = _message_event(message)
            self.seen.append(event)
            kind = event.type if event.type != "message" else None
            chunk = encode_event(event.data, kind, event.id or None)
        elif message["t"] == "comment":
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


class SharedEventSourceTransport(_LinkEnd):
    """An ``EventSourceTransport`` whose native object is a link to the leader's stream."""

    def __init__(
        self, participant: Participant, inner: EventSourceTransport, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(participant, loop)
        self.inner = inner
        self._source = 0
        self._events: EventSourceEvents | None = None
        self._types: set[str] = set()
        self._retry: asyncio.TimerHandle | None = None

    def check_url(self, url: str) -> None:
        self.inner.check_url(url)

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
            self.participant.link_send(self.link, "listen", y=sorted(self._types))

    def _relink(self) -> None:
        self._open({"last": self.last_event_id, "types": sorted(self._types)})

    def link_opened(self, link: str) -> None:
        if link == self.link and self._events is not None and self._source:
            self._events.source_opened(self._source)

    def link_message(self, link: str, message: dict[str, Any]) -> None:
        events = self._events
        if link != self.link or events is None or not self._source or message["t"] != "event":
            return
        event = _message_event(message)
        self.seen.append(event)
        if event.type == "message" or event.type in self._types:
            events.source_event(self._source, event.type, event.data, event.id)

    def link_closed(self, link: str, code: int, reason: str) -> None:
        if link != self.link:
            return
        self.link = None
        if self._events is not None and self._source:
            self._events.source_error(self._source, False)  # as a native object reconnecting
            self._retry = self._loop.call_later(1.0, self._reconnect)

    def leader_ready(self) -> None:
        self._reconnect()

    def _reconnect(self) -> None:
        self._retry = None
        if self._source and self.link is None:
            self._relink()

    def watch_page(self, events: PageEvents) -> None:
        self._page = events


class _HubFetchEvents:
    """The hub client's request reports, read first: the events (and keep-alive bytes) of the
    body go to the relay, then everything to the hub's client."""

    def __init__(self, hub: StreamHub, events: FetchEvents) -> None:
        self.hub = hub
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
            self.hub.event(event)
        if not events:
            self.hub.alive()
        return more

    def fetch_ended(self, request: int) -> None:
        self.events.fetch_ended(request)

    def fetch_failed(self, request: int, message: str) -> None:
        self.events.fetch_failed(request, message)


class _HubSourceEvents:
    """The hub client's native object reports: each event to the relay too."""

    def __init__(self, hub: StreamHub, events: EventSourceEvents) -> None:
        self.hub = hub
        self.events = events

    def source_opened(self, source: int) -> None:
        self.events.source_opened(source)

    def source_event(self, source: int, type: str, data: str, last_event_id: str) -> None:
        self.hub.event(ServerSentEvent(type=type, data=data, id=last_event_id))
        self.events.source_event(source, type, data, last_event_id)

    def source_error(self, source: int, for_good: bool) -> None:
        self.events.source_error(source, for_good)


class _Lent:
    """The real transport, lent to the hub: what it carries passes the relay first, page events
    come through the link end, and giving it back stops what it carries but keeps it for the
    client."""

    def __init__(self, hub: StreamHub, end: SharedFetchTransport | SharedEventSourceTransport) -> None:
        self._hub = hub
        self._end = end
        self._inner: Any = end.inner
        self._current: int | None = None

    def __getattr__(self, name: str) -> Any:  # check_url, abort, destroy, listen, unlisten
        return getattr(self._inner, name)

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        self._current = request.id
        self._inner.start(request, _HubFetchEvents(self._hub, events))

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        self._current = source
        self._inner.create(source, url, with_credentials, _HubSourceEvents(self._hub, events))

    def watch_page(self, events: PageEvents) -> None:
        self._end.hub_watch(HubPage(self._hub.participant, events))

    def dispose(self) -> None:
        self._end.hub_watch(None)
        if self._current is not None:
            stop = self._inner.abort if isinstance(self._end, SharedFetchTransport) else self._inner.destroy
            stop(self._current)


class StreamHub:
    """The leader's real event stream and its relay (see the module docstring)."""

    def __init__(
        self,
        participant: Participant,
        leader: SSEClient,
        end: SharedFetchTransport | SharedEventSourceTransport,
    ) -> None:
        self.participant = participant
        self.relay = EventRelay(RING, seen=tuple(end.seen))
        self._owners: dict[str, str] = {}
        self._types: dict[str, set[str]] = {}  # link -> the event types its client listens to
        self._closing = False
        self._alive_at = 0.0
        self._state_now = State.IDLE
        self._loop = asyncio.get_running_loop()
        self._lent = _Lent(self, end)
        options = {k: v for k, v in leader.options.items() if k != "share"}
        options["last_event_id"] = end.last_event_id or leader.last_event_id
        if isinstance(end, SharedFetchTransport):
            options["when_hidden"] = "keep"  # the leader hidden: the others still read
        make: Any = type(leader)  # a FetchEventSource or an EventSourceClient, as the leader
        self.client: SSEClient = make(leader.url, transport=self._lent, **options)
        self.client.on_state(self._state)

    def types(self) -> set[str]:
        return set().union(*self._types.values()) if self._types else set()

    # -- Hub

    def start(self) -> None:
        self.client.connect()

    def link_requested(self, link: str, participant: str, extra: dict[str, Any]) -> None:
        self._owners[link] = participant
        self._listen(link, extra.get("types"))
        last = extra.get("last")
        self._run(self.relay.link_requested(link, participant, last if isinstance(last, str) else ""))
        self.participant.set_tabs(self.relay.participants())

    def link_message(self, link: str, message: dict[str, Any]) -> None:
        if message["t"] == "listen":
            self._listen(link, message.get("y"))

    def link_closed(self, link: str) -> None:
        self._owners.pop(link, None)
        self._types.pop(link, None)
        self.relay.link_closed(link)
        self.participant.set_tabs(self.relay.participants())

    def prune(self, alive: set[str]) -> None:
        for link, owner in list(self._owners.items()):
            if owner not in alive:
                self.link_closed(link)
                # Gone, as far as the locks tell: should it still be there, it reconnects.
                self.participant.to_link(owner, link, "close", c=1006, r="the tab was not seen")

    def close(self) -> None:
        self._closing = True
        self._run(self.relay.stream_lost("the tab holding the shared stream is leaving"))
        self._owners.clear()
        self.client.close()

    # -- the real stream

    def event(self, event: ServerSentEvent) -> None:
        self._run(self.relay.event(event))

    def alive(self) -> None:
        """Bytes without an event (a keep-alive comment): tell the links (a burst only once)."""
        now = self._loop.time()
        if now - self._alive_at >= KEEPALIVE_EVERY:
            self._alive_at = now
            for link, owner in self._owners.items():
                self.participant.to_link(owner, link, "comment")

    def _state(self, new: State) -> None:
        old, self._state_now = self._state_now, new
        if self._closing:
            return
        if new is State.OPEN:
            self._run(self.relay.stream_opened())
            self.participant.connection_ready()
        elif old is State.OPEN:
            self._run(self.relay.stream_lost(self._lost_reason()))

    def _lost_reason(self) -> str:
        """Why the links lose the stream: why the real one was lost (the hub client's last
        error, without its type), so that a tab reads what an unshared client would."""
        error = self.client.stats.last_error
        return error.partition(": ")[2] or error if error else "the stream from the server was lost"

    # -- machinery

    def _listen(self, link: str, types: object) -> None:
        if not isinstance(types, list):
            return
        before = self.types()
        self._types[link] = {t for t in types if isinstance(t, str) and t != "message"}
        if isinstance(self._lent._end, SharedEventSourceTransport):
            for added in self.types() - before:
                self._lent.listen(added)  # the native object dispatches only what is listened to

    def _run(self, actions: list[EventRelayAction]) -> None:
        participant = self.participant
        for action in actions:
            owner = self._owners.get(action.link)
            if owner is None:
                continue
            if type(action) is Deliver:
                event = action.event
                participant.to_link(owner, action.link, "event", y=event.type, i=event.id, d=event.data)
            elif type(action) is OpenStream:
                participant.to_link(owner, action.link, "opened")
            elif type(action) is CloseStream:
                del self._owners[action.link]
                participant.to_link(owner, action.link, "close", c=1006, r=action.reason)
