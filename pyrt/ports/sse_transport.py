"""What the SSE clients need from the runtime they run on: a ``fetch`` and a native ``EventSource``.

:class:`FetchTransport` carries out HTTP requests for :class:`~pyrt.FetchEventSource` (the
browser's ``fetch`` in :mod:`pyrt.browser.fetch_transport`, ``httpx`` in
:mod:`pyrt.cpython.fetch_transport`); :class:`EventSourceTransport` creates native event sources
for :class:`~pyrt.EventSourceClient` (``js.EventSource`` in
:mod:`pyrt.browser.eventsource_transport`; on CPython, ``httpx`` playing one in
:mod:`pyrt.cpython.eventsource_transport`). :mod:`pyrt.testing` has an in-memory fake of each, and
:mod:`pyrt.aio.runtime` picks the defaults. Every decision stays in the engines of
:mod:`pyrt.engine.sse`: a transport only moves bytes and reports; the page and the rest are the
runtime's services (:mod:`pyrt.ports.services`). Typing only: nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "Credentials",
    "EventSourceEvents",
    "EventSourceTransport",
    "FetchEvents",
    "FetchRequest",
    "FetchTransport",
]

Credentials = Literal["omit", "same-origin", "include"]


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One request of a :class:`~pyrt.FetchEventSource`: pass ``id`` back with every report."""

    id: int
    url: str
    method: str
    headers: dict[str, str]
    body: str | bytes | None
    credentials: Credentials


class FetchEvents(Protocol):
    """Where a fetch transport reports what happened to a request, in this order:
    :meth:`fetch_response` then body chunks then :meth:`fetch_ended` — or :meth:`fetch_failed`
    at any point."""

    def fetch_response(
        self, request: int, status: int, content_type: str | None, retry_after: str | None, wall_time: float
    ) -> bool:
        """Status and headers arrived (``wall_time``: Unix seconds, for an HTTP-date
        ``Retry-After``). Returns ``True`` when the body must be read."""
        ...

    def fetch_chunk(self, request: int, chunk: bytes) -> bool:
        """A piece of the body. Returns ``False`` when reading must stop (the request was
        aborted or superseded meanwhile: report nothing more about it)."""
        ...

    def fetch_ended(self, request: int) -> None:
        """The server ended the body normally."""

    def fetch_failed(self, request: int, message: str) -> None:
        """No response, or the body broke while being read; ``message`` says how."""


class FetchTransport(Protocol):
    """HTTP requests with a streamed body, one at a time, each abortable.

    Contract: after :meth:`abort` of a request, or :meth:`dispose`, report nothing more about it.
    :meth:`check_url` raises at once for a URL this runtime can never fetch (a relative one
    outside a browser).
    """

    def check_url(self, url: str) -> None: ...

    def start(self, request: FetchRequest, events: FetchEvents) -> None: ...

    def abort(self, request: int) -> None: ...

    def dispose(self) -> None: ...


class EventSourceEvents(Protocol):
    """Where an EventSource transport reports the events of the native object ``source``."""

    def source_opened(self, source: int) -> None:
        """The native ``open`` event."""

    def source_event(self, source: int, type: str, data: str, last_event_id: str) -> None:
        """An event of type ``"message"`` or of a type passed to
        :meth:`EventSourceTransport.listen`; ``last_event_id`` as the native object reports it."""

    def source_error(self, source: int, for_good: bool, retry_after: float | None = None) -> None:
        """The native ``error`` event; ``for_good`` when the object's ``readyState`` is then
        ``CLOSED`` (it will not reconnect by itself), ``False`` while it reconnects itself.
        ``retry_after``: seconds the refusing response's ``Retry-After`` asked, when the
        transport can see it (a browser's object cannot)."""


class EventSourceTransport(Protocol):
    """Native ``EventSource`` objects, one at a time.

    Contract: :meth:`create` replaces nothing (the engine destroys the previous object first);
    after :meth:`destroy` or :meth:`dispose`, report nothing more about that object. Events of
    type ``"message"`` are always reported; other types only after :meth:`listen` (a native
    ``EventSource`` only dispatches the types someone listens to), for the current object and
    every later one, until :meth:`unlisten`.
    """

    def check_url(self, url: str) -> None: ...

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None: ...

    def destroy(self, source: int) -> None: ...

    def listen(self, type: str) -> None: ...

    def unlisten(self, type: str) -> None: ...

    def dispose(self) -> None: ...
