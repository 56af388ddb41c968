"""The CPython transport of :class:`~pyrt.EventSourceClient`: ``httpx`` playing the native
``EventSource``.

What the browser's object does, it does: GET with ``Accept: text/event-stream``; after a dropped
stream or a network error it reconnects by itself after the stream's ``retry:``
(:data:`NATIVE_RECONNECT` seconds by default), sending ``Last-Event-ID``; on a status other than
200, or another content type, it gives up for good (the policy then re-creates it with backoff
and ``?lastEventId=``, not before the response's ``Retry-After``, which a browser's object
cannot see). Only ``"message"`` events and the types passed to ``listen`` are reported.
``with_credentials`` has no effect (cookies the server sets are kept for this client's own
requests); a relative URL raises :class:`~pyrt.errors.RelativeURLError` from ``connect()``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pyrt.cpython.http import HttpSession, describe
from pyrt.engine.sse import classify_response, parse_retry_after
from pyrt.engine.urls import http_url
from pyrt.ports.sse_transport import EventSourceEvents
from pyrt.wire.sse import SSEDecoder

__all__ = ["NATIVE_RECONNECT", "CPythonEventSourceTransport"]

log = logging.getLogger("pyrt.sse")

#: Seconds a native ``EventSource`` waits before reconnecting when the stream set no ``retry:``
#: (Chromium's default).
NATIVE_RECONNECT = 3.0


class CPythonEventSourceTransport:
    """``httpx`` as native ``EventSource`` objects for :class:`~pyrt.EventSourceClient` on CPython."""

    def __init__(self) -> None:
        self.session = HttpSession()
        self._types: set[str] = set()

    def check_url(self, url: str) -> None:
        http_url(url)

    def create(self, source: int, url: str, with_credentials: bool, events: EventSourceEvents) -> None:
        self.session.start(source, self._play(source, url, events))

    def destroy(self, source: int) -> None:
        self.session.stop(source)

    def listen(self, type: str) -> None:
        self._types.add(type)

    def unlisten(self, type: str) -> None:
        self._types.discard(type)

    def dispose(self) -> None:
        self.session.close()

    async def _play(self, source: int, url: str, events: EventSourceEvents) -> None:
        """What a browser's ``EventSource`` object does, until it is destroyed."""
        session = self.session
        try:
            http = session.client()
        except Exception as exc:  # no client, no request: the object fails for good (reported)
            log.warning("pyrt EventSource %s: could not make an HTTP client: %s", url, describe(exc))
            if session.done(source):
                events.source_error(source, True)
            return
        live = session.is_current
        decoder = SSEDecoder()  # a new EventSource starts with no last event id
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if decoder.last_event_id:
                headers["Last-Event-ID"] = decoder.last_event_id
            try:
                async with http.stream("GET", url, headers=headers) as response:
                    verdict = classify_response(response.status_code, response.headers.get("content-type"))
                    if verdict != "open":  # the native object fails for good: readyState CLOSED
                        wait = parse_retry_after(response.headers.get("retry-after"), time.time())
                        if session.done(source):
                            events.source_error(source, True, wait)
                        return
                    events.source_opened(source)
                    async for chunk in response.aiter_bytes():
                        for event in decoder.feed(chunk):
                            if not live(source):
                                return
                            if event.type == "message" or event.type in self._types:
                                events.source_event(source, event.type, event.data, event.id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a network error: the native object reconnects by itself
                log.debug("pyrt EventSource %s: %s", url, describe(exc))
            decoder.end()
            if not live(source):
                return
            events.source_error(source, False)
            if not live(source):
                return
            retry = decoder.retry
            await asyncio.sleep(retry / 1000 if retry is not None else NATIVE_RECONNECT)
