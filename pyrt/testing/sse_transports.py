"""Fake ``fetch`` and ``EventSource`` runtimes for the SSE clients, the test playing the server."""

from __future__ import annotations

from dataclasses import dataclass

from pyrt.ports.sse_transport import EventSourceEvents, FetchEvents, FetchRequest
from pyrt.testing.services import CarriesServices, FakeServices

# ---------------------------------------------------------------------------------- SSE fakes


@dataclass(eq=False)
class FakeRequest:
    """One request a :class:`~pyrt.FetchEventSource` made through a :class:`FakeFetchTransport`."""

    request: FetchRequest
    events: FetchEvents
    status: int | None = None  # set by respond()
    reading: bool = False  # the client reads the body
    aborted: bool = False  # the client aborted it
    finished: bool = False  # ended or failed (by the test)

    @property
    def url(self) -> str:
        return self.request.url

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def headers(self) -> dict[str, str]:
        return self.request.headers

    @property
    def body(self) -> str | bytes | None:
        return self.request.body


class FakeFetchTransport(CarriesServices):
    """An in-memory ``fetch`` for :class:`~pyrt.FetchEventSource`: the test plays the server.

    Every request the client starts lands in :attr:`requests`; :meth:`respond`, :meth:`send`,
    :meth:`end` and :meth:`fail` act on the current one. It carries :attr:`services` (a
    :class:`FakeServices`, which a client given no ``services=`` uses); the page is in
    :attr:`page` once the client watches it (call ``transport.page.page_backgrounded()`` to
    hide it). Example::

        transport = FakeFetchTransport()
        source = FetchEventSource("/sse", transport=transport).connect()
        transport.respond(200)
        transport.send("id: 1\ndata: hello\n\n")
        transport.end()            # the client reconnects with Last-Event-ID: 1
    """

    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self.services = FakeServices()
        self.disposed = False

    @property
    def request(self) -> FakeRequest | None:
        """The request in flight (not aborted, not finished), if any."""
        if self.requests and not (self.requests[-1].aborted or self.requests[-1].finished):
            return self.requests[-1]
        return None

    # -- the FetchTransport protocol

    def check_url(self, url: str) -> None:
        """Any URL: nothing is fetched."""

    def start(self, request: FetchRequest, events: FetchEvents) -> None:
        self.requests.append(FakeRequest(request, events))

    def abort(self, request: int) -> None:
        for fake in self.requests:
            if fake.request.id == request:
                fake.aborted = True

    def dispose(self) -> None:
        current = self.request
        if current is not None:
            current.aborted = True
        self.disposed = True

    # -- the test's controls

    def respond(
        self,
        status: int = 200,
        content_type: str | None = "text/event-stream",
        *,
        retry_after: str | None = None,
        wall_time: float = 0.0,
    ) -> bool:
        """The current request gets its status and headers; returns whether the client reads on."""
        fake = self._current("respond to")
        if fake.status is not None:
            raise RuntimeError("this request has its response already")
        fake.status = status
        events = fake.events
        fake.reading = events.fetch_response(fake.request.id, status, content_type, retry_after, wall_time)
        return fake.reading

    def send(self, data: str | bytes) -> bool:
        """A chunk of the body of the current request; returns whether the client reads on."""
        fake = self._current("send on")
        if not fake.reading:
            raise RuntimeError("the client is not reading this request's body (respond(200) first)")
        chunk = data.encode() if isinstance(data, str) else bytes(data)
        fake.reading = fake.events.fetch_chunk(fake.request.id, chunk)
        return fake.reading

    def end(self) -> None:
        """The server ends the body of the current request."""
        fake = self._current("end")
        fake.finished = True
        fake.events.fetch_ended(fake.request.id)

    def fail(self, message: str = "network error") -> None:
        """The current request fails (no response, or a broken body)."""
        fake = self._current("fail")
        fake.finished = True
        fake.events.fetch_failed(fake.request.id, message)

    def _current(self, what: str) -> FakeRequest:
        fake = self.request
        if fake is None:
            raise RuntimeError(f"cannot {what} the request: there is no request in flight")
        return fake


@dataclass(eq=False)
class FakeSource:
    """One native ``EventSource`` a :class:`~pyrt.EventSourceClient` made."""

    source: int
    url: str
    with_credentials: bool
    events: EventSourceEvents
    state: str = "connecting"  # "connecting" | "open" | "closed", as readyState
    last_event_id: str = ""
    destroyed: bool = False


class FakeEventSourceTransport(CarriesServices):
    """In-memory native ``EventSource`` objects for :class:`~pyrt.EventSourceClient`: the test
    plays the server and the browser.

    Every object the client creates lands in :attr:`sources`; :meth:`open`, :meth:`send`,
    :meth:`drop` and :meth:`fail` act on the current one, as a browser's object would behave:
    it keeps its last event id, reports only ``"message"`` and the :attr:`types` listened to,
    reconnects by itself after :meth:`drop` and gives up for good after :meth:`fail`. It
    carries :attr:`services` (a :class:`FakeServices`), which a client given no ``services=`` uses.
    """

    def __init__(self) -> None:
        self.services = FakeServices()
        self.sources: list[FakeSource] = []
        self.types: set[str] = set()
        self.disposed = False

    @property
    def current(self) -> FakeSource | None:
        """The live native object, if any."""
        if self.sources and not self.sources[-1].destroyed:
            return self.sources[-1]
        return None

    # -- the EventSourceTransport protocol

    def check_url(self, url: str) -> None:
        """Any URL: nothing is fetched."""

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        self.sources.append(FakeSource(source, url, with_credentials, events))

    def destroy(self, source: int) -> None:
        for fake in self.sources:
            if fake.source == source:
                fake.destroyed = True
                fake.state = "closed"

    def listen(self, type: str) -> None:
        self.types.add(type)

    def unlisten(self, type: str) -> None:
        self.types.discard(type)

    def dispose(self) -> None:
        current = self.current
        if current is not None:
            self.destroy(current.source)
        self.disposed = True

    # -- the test's controls

    def open(self) -> None:
        """The current object opens (first time, or after reconnecting by itself)."""
        fake = self._current("open")
        fake.state = "open"
        fake.events.source_opened(fake.source)

    def send(self, data: str, *, type: str = "message", id: str | None = None) -> bool:
        """An event arrives on the current object; returns whether it was reported (its type is
        ``"message"`` or listened to)."""
        fake = self._current("send on")
        if fake.state != "open":
            raise RuntimeError("the EventSource is not open")
        if id is not None:
            fake.last_event_id = id
        if type != "message" and type not in self.types:
            return False
        fake.events.source_event(fake.source, type, data, fake.last_event_id)
        return True

    def drop(self) -> None:
        """The connection is lost; the object reconnects by itself (``open()`` it again)."""
        fake = self._current("drop")
        fake.state = "connecting"
        fake.events.source_error(fake.source, False)

    def fail(self) -> None:
        """The object gives up for good (an HTTP error, a wrong content type)."""
        fake = self._current("fail")
        fake.state = "closed"
        fake.events.source_error(fake.source, True)

    def _current(self, what: str) -> FakeSource:
        fake = self.current
        if fake is None or fake.state == "closed":
            raise RuntimeError(f"cannot {what} the EventSource: there is no live one")
        return fake
