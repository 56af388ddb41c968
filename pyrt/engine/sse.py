"""Decisions for the two SSE clients, sans I/O: when to (re)connect, when to give up, what to send.

Two engines, both in the shape the asyncio driver pumps (:mod:`pyrt.aio.driver`):

- inputs are method calls that take the current monotonic time ``now`` (seconds);
- outputs are :meth:`actions` (drained by the adapter, which carries them out in order) and
  :meth:`next_deadline` (the adapter keeps **one** timer armed for it and calls ``tick(now)``
  when it fires).

:class:`FetchSSEEngine` drives SSE over ``fetch`` (``FetchEventSource``, over the browser's
``fetch`` or ``httpx``): it owns an :class:`~pyrt.wire.sse.SSEDecoder`, builds the request headers
(``Accept``, ``Last-Event-ID``), classifies each response (:func:`classify_response`), detects
stalled streams, pauses while the page is hidden, and schedules reconnects with a
:class:`~pyrt.engine.reconnect.ReconnectScheduler` that never undercuts the server's ``retry:`` or
``Retry-After``.

:class:`EventSourcePolicy` drives a native ``EventSource``: the browser reconnects by itself
after a dropped stream, but gives up for good on an HTTP error or a wrong content type (the
object reaches ``CLOSED``). The policy then re-creates it with backoff, passing the last event
id as a query parameter, because a new ``EventSource`` does not send ``Last-Event-ID``.

Both move between the :class:`~pyrt.engine.states.State` values along their own table
(:data:`~pyrt.engine.states.FETCH_SSE_TRANSITIONS`, :data:`~pyrt.engine.states.EVENTSOURCE_TRANSITIONS`) and
report each move as a :class:`~pyrt.engine.states.StateChanged` action.

Each request / native object has a generation number (``StartRequest.request``,
``CreateSource.source``); inputs carry it back, and inputs from a superseded generation (an
aborted fetch still unwinding, a late event from a destroyed ``EventSource``) are ignored.

Nothing here imports ``js``, ``pyodide``, ``asyncio`` or ``time``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from pyrt.engine.backoff import Backoff
from pyrt.engine.reconnect import ReconnectScheduler
from pyrt.engine.states import (
    EVENTSOURCE_TRANSITIONS,
    FETCH_SSE_TRANSITIONS,
    Closed,
    ReadyState,
    State,
    StateChanged,
    StateMachine,
    Transitions,
    ready_state,
)
from pyrt.errors import (
    InvalidStateError,
    SSEContentTypeError,
    SSEError,
    SSEHTTPError,
    SSENetworkError,
    SSERetriesExhaustedError,
    SSEStalledError,
    SSEStreamEndedError,
)
from pyrt.wire.refusals import is_retryable_status
from pyrt.wire.sse import ServerSentEvent, SSEDecoder

__all__ = [
    "WAKE_REPLACE",
    "AbortRequest",
    "Closed",
    "CreateSource",
    "DestroySource",
    "Disconnected",
    "EventSourcePolicy",
    "FetchSSEEngine",
    "SSEAction",
    "SSEStats",
    "StartRequest",
    "WhenHidden",
    "classify_response",
    "parse_retry_after",
    "resume_url",
]

WhenHidden = Literal["keep", "pause"]
WAKE_REPLACE = 60.0  # seconds asleep after which a stream with no stall timeout is replaced on wake
_WHEN_HIDDEN = ("keep", "pause")
_MAX_SERVER_DELAY = 300.0  # the longest wait a Retry-After can impose on EventSourcePolicy


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class StartRequest:
    """Start a fetch with these headers (the user's, plus ``Accept`` and ``Last-Event-ID``).

    Pass ``request`` back with every input about this fetch.
    """

    request: int
    headers: dict[str, str]
    attempt: int  # 0 for the first connection, n for the n-th consecutive reconnect attempt


@dataclass(frozen=True, slots=True)
class AbortRequest:
    """Abort fetch ``request`` (its AbortController) and stop reading its body."""

    request: int
    reason: str


@dataclass(frozen=True, slots=True)
class CreateSource:
    """Create a native ``EventSource`` on ``url``; pass ``source`` back with its events."""

    source: int
    url: str
    attempt: int


@dataclass(frozen=True, slots=True)
class DestroySource:
    """Close native ``EventSource`` ``source`` and release everything attached to it."""

    source: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection was lost and the client reconnects: report ``error`` (``on_error``) and
    the reconnect (``on_reconnecting``).

    ``delay`` is the wait before the next attempt, or ``None`` when a native ``EventSource``
    reconnects on its own schedule. ``attempt`` counts consecutive failed attempts.
    """

    error: SSEError
    delay: float | None
    attempt: int


SSEAction = StartRequest | AbortRequest | CreateSource | DestroySource | StateChanged | Disconnected | Closed


@dataclass(frozen=True, slots=True)
class SSEStats:
    """A snapshot of a client's counters."""

    opens: int = 0  # times the stream opened
    disconnects: int = 0  # times an open or opening connection was lost (any cause)
    failures: int = 0  # consecutive failed attempts right now (0 while healthy)
    stalls: int = 0  # stall_timeout verdicts
    events: int = 0  # events delivered
    bytes: int = 0  # body bytes received (fetch only)
    last_error: str | None = None  # text of the last error, if any
    last_delay: float | None = None  # the last reconnect delay chosen, seconds


# --------------------------------------------------------------------------- pure helpers

ResponseVerdict = Literal["open", "stop", "retry", "fatal"]


def _is_event_stream(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def classify_response(status: int, content_type: str | None) -> ResponseVerdict:
    """What a fetch-based client does with a response.

    ``"open"``: 200 with ``text/event-stream`` (parameters such as ``charset`` ignored; the
    stream is UTF-8 regardless). ``"stop"``: 204 No Content, the spec's way for a server to
    say "do not reconnect". ``"retry"``: 408, 429 and 5xx. ``"fatal"``: everything else (401,
    403, 404, other 4xx, 200 with another content type, other 2xx, 3xx, opaque 0).
    """
    if status == 200:
        return "open" if _is_event_stream(content_type) else "fatal"
    if status == 204:
        return "stop"
    return "retry" if is_retryable_status(status) else "fatal"


def parse_retry_after(value: str | None, wall_time: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    An HTTP date needs ``wall_time`` (Unix seconds, the caller's clock); a date in the past
    gives ``0.0``. Anything unparsable gives ``None``.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(int(value[-12:]) if len(value) > 12 else int(value))
    if wall_time is None:
        return None
    import email.utils  # here, not at module level: it pulls in urllib and ipaddress (slow in Pyodide)

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a zoneless one is not an HTTP date
    return max(0.0, when.timestamp() - wall_time)


def resume_url(url: str, param: str, last_event_id: str) -> str:
    """``url`` with query parameter ``param`` set to ``last_event_id`` (removed when empty).

    Other parameters are kept byte for byte, in order; the fragment stays last.
    """
    from urllib.parse import quote  # here: a reconnect-time need, kept off the import path

    base, hash_, fragment = url.partition("#")
    path, qmark, query = base.partition("?")
    key = quote(param, safe="")
    kept = [p for p in (query.split("&") if qmark else []) if p and p.split("=", 1)[0] not in (param, key)]
    if last_event_id:
        kept.append(f"{key}={quote(last_event_id, safe='')}")
    out = path + ("?" + "&".join(kept) if kept else "")
    return out + hash_ + fragment


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


_CLOSED_BY_APP = "closed by the application"


class _Machine:
    """What both SSE engines keep alike: the state machine, the drained action list, the
    reconnect scheduler and the counters."""

    def __init__(self, table: Transitions, backoff: Backoff, rng: Callable[[], float]) -> None:
        self.backoff = backoff
        self._sm = StateMachine(State.IDLE, table)
        self._reconnect = ReconnectScheduler(backoff, rng)
        self._actions: list[SSEAction] = []
        self._opened_at = 0.0
        self._reconnect_at: float | None = None
        self._opens = 0
        self._disconnects = 0
        self._stalls = 0
        self._events = 0
        self._bytes = 0
        self._last_error: str | None = None

    @property
    def state(self) -> State:
        return self._sm.state

    @property
    def ready_state(self) -> ReadyState:
        return ready_state(self._sm.state)

    @property
    def stats(self) -> SSEStats:
        return SSEStats(
            opens=self._opens,
            disconnects=self._disconnects,
            failures=self._reconnect.failures,
            stalls=self._stalls,
            events=self._events,
            bytes=self._bytes,
            last_error=self._last_error,
            last_delay=self._reconnect.last_delay,
        )

    def actions(self) -> list[SSEAction]:
        """The actions decided since the last call, oldest first (the list is handed over)."""
        out, self._actions = self._actions, []
        return out

    def _set(self, new: State) -> None:
        """Move to ``new`` along the table and report it (staying put reports nothing)."""
        if self._sm.state is not new:
            old = self._sm.to(new)
            self._actions.append(StateChanged(old, new))

    def _check_connect(self) -> None:
        if self._sm.state is not State.IDLE:
            raise InvalidStateError(
                f"connect() called twice (state {self._sm.state.name}); create a new client"
            )

    def _opened(self, now: float) -> None:
        self._set(State.OPEN)
        self._opened_at = now
        self._opens += 1

    def _uptime(self, now: float) -> float | None:
        return now - self._opened_at if self._sm.state is State.OPEN else None

    def _retry_or_give_up(self, now: float, error: SSEError, floor: float = 0.0) -> None:
        """A connection (or an attempt) failed: schedule the next one, or stop for good."""
        self._last_error = _text(error)
        delay = self._reconnect.failed(self._uptime(now), floor)
        if delay is None:
            gave_up = SSERetriesExhaustedError(self._reconnect.attempts_made, error)
            self._finish(gave_up, str(gave_up))
            return
        self._set(State.RECONNECTING)
        self._reconnect_at = now + delay
        self._actions.append(Disconnected(error, delay, self._reconnect.failures))

    def _closed(self, error: SSEError | None, detail: str, by_client: bool) -> None:
        self._reconnect_at = None
        self._set(State.CLOSED)
        if error is not None:
            self._last_error = _text(error)
        self._actions.append(Closed(error, detail, by_client))  # no close code: not a WebSocket

    def _finish(self, error: SSEError | None, detail: str, by_client: bool = False) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- fetch engine


class FetchSSEEngine(_Machine):
    """The whole behaviour of SSE over ``fetch``, as a state machine driven by its adapter.

    Contract for the adapter:

    1. Call :meth:`connect` once; carry out :meth:`actions` after **every** input.
    2. On :class:`StartRequest`: fetch with ``headers`` (plus the method, body and credentials
       the user chose), then report exactly one of :meth:`response` (status and headers arrived)
       or :meth:`failed` (no response).
    3. After :meth:`response` returned ``True``: read the body; pass each chunk to
       :meth:`received` (it returns the parsed events for immediate delivery), then report the
       end with :meth:`ended` or a broken read with :meth:`failed`.
    4. On :class:`AbortRequest`: abort that fetch; later reports about it are ignored anyway.
    5. Keep one timer at :meth:`next_deadline` and call :meth:`tick` when it fires (re-read
       :meth:`next_deadline` after every input except :meth:`received`, which only ever moves
       the deadline later, so an early tick simply re-arms).
    6. Report page visibility with :meth:`visibility` and network recovery with :meth:`online`.

    ``rng`` returns floats in [0, 1) for the backoff jitter. ``max_server_delay`` caps how long a
    server's ``retry:`` or ``Retry-After`` can make the client wait.
    """

    def __init__(
        self,
        *,
        backoff: Backoff,
        rng: Callable[[], float],
        headers: Mapping[str, str] | None = None,
        last_event_id: str = "",
        when_hidden: WhenHidden = "keep",
        stall_timeout: float | None = 45.0,
        max_server_delay: float = 300.0,
    ) -> None:
        if when_hidden not in _WHEN_HIDDEN:
            raise ValueError(f"when_hidden must be one of {_WHEN_HIDDEN}, got {when_hidden!r}")
        if stall_timeout is not None and not stall_timeout > 0:
            raise ValueError(f"stall_timeout must be > 0 or None, got {stall_timeout!r}")
        if not max_server_delay >= 0:
            raise ValueError(f"max_server_delay must be >= 0, got {max_server_delay!r}")
        super().__init__(FETCH_SSE_TRANSITIONS, backoff, rng)
        self.when_hidden: WhenHidden = when_hidden
        self.stall_timeout = stall_timeout
        self.max_server_delay = max_server_delay
        self._headers = {k: v for k, v in (headers or {}).items()}
        self._decoder = SSEDecoder(last_event_id)
        self._request = 0  # generation of the current request (0: none yet)
        self._in_flight = False  # a request is connecting or open and must be aborted to stop
        self._activity = 0.0  # when the last byte (or the request start) happened
        self._retry_after: float | None = None  # from the last response, for the next delay
        self._hidden = False

    # -- observers

    @property
    def last_event_id(self) -> str:
        """The id the next request sends as ``Last-Event-ID`` (``""``: none)."""
        return self._decoder.last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) the stream asked for with ``retry:``, if any."""
        return self._decoder.retry

    @property
    def request(self) -> int:
        """The generation of the current (or last) request."""
        return self._request

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must be called next (monotonic seconds), or ``None``."""
        if self._sm.state is State.RECONNECTING:
            return self._reconnect_at
        if self._in_flight and self.stall_timeout is not None:
            return self._activity + self.stall_timeout
        return None

    def request_headers(self) -> dict[str, str]:
        """The headers of the next request: the user's, ``Accept``, and ``Last-Event-ID``."""
        headers = dict(self._headers)
        if not any(k.lower() == "accept" for k in headers):
            headers["Accept"] = "text/event-stream"
        for k in [k for k in headers if k.lower() == "last-event-id"]:
            del headers[k]
        if self._decoder.last_event_id:
            headers["Last-Event-ID"] = self._decoder.last_event_id
        return headers

    # -- inputs

    def connect(self, now: float) -> None:
        """Start: the first request goes out at once (or when the page is visible)."""
        self._check_connect()
        if self._hidden and self.when_hidden == "pause":
            self._set(State.PAUSED)
            return
        self._start(now)

    def close(self, now: float) -> None:
        """Stop for good (idempotent): abort what is in flight, cancel any reconnect."""
        if self._sm.state is State.CLOSED:
            return
        self._abort(_CLOSED_BY_APP)
        self._finish(None, _CLOSED_BY_APP, by_client=True)

    def response(
        self,
        request: int,
        status: int,
        content_type: str | None,
        now: float,
        *,
        retry_after: str | None = None,
        wall_time: float | None = None,
    ) -> bool:
        """The response to ``request`` arrived. Returns ``True`` when the body must be read.

        ``retry_after`` is the raw ``Retry-After`` header; ``wall_time`` the Unix time, needed
        only to resolve an HTTP-date ``Retry-After``.
        """
        if request != self._request or self._sm.state is not State.CONNECTING:
            return False
        self._activity = now
        verdict = classify_response(status, content_type)
        if verdict == "open":
            self._opened(now)
            return True
        self._in_flight = False
        self._actions.append(AbortRequest(request, f"HTTP {status}"))
        if verdict == "stop":
            self._finish(None, f"the server answered {status} No Content: not reconnecting")
            return False
        if verdict == "retry":
            self._retry_after = parse_retry_after(retry_after, wall_time)
            self._lost(now, SSEHTTPError(status, retryable=True))
            return False
        fatal: SSEError = (
            SSEContentTypeError(content_type or "")
            if status == 200
            else SSEHTTPError(status, retryable=False)
        )
        self._finish(fatal, str(fatal))
        return False

    def received(self, request: int, chunk: bytes | str, now: float) -> list[ServerSentEvent]:
        """A chunk of the body of ``request``: returns the events it completes, to deliver now."""
        if request != self._request or self._sm.state is not State.OPEN:
            return []
        self._activity = now
        self._bytes += len(chunk)
        events = self._decoder.feed(chunk)
        if events:
            self._events += len(events)
        return events

    def ended(self, request: int, now: float) -> None:
        """The body of ``request`` ended normally (the server closed the response)."""
        if request != self._request or not self._in_flight:
            return
        self._in_flight = False
        self._lost(now, SSEStreamEndedError("the server ended the event stream"))

    def failed(self, request: int, now: float, message: str = "network error") -> None:
        """``request`` failed: no response at all, or the body broke while being read."""
        if request != self._request or not self._in_flight:
            return
        self._in_flight = False
        self._lost(now, SSENetworkError(message))

    def tick(self, now: float) -> None:
        """The timer fired: start a due reconnect, or abort a stalled stream."""
        if self._sm.state is State.RECONNECTING:
            if self._reconnect_at is not None and now >= self._reconnect_at:
                self._start(now)
            return
        if self._in_flight and self.stall_timeout is not None and now >= self._activity + self.stall_timeout:
            self._stalls += 1
            self._abort("stalled")
            self._lost(now, SSEStalledError(self.stall_timeout))

    def visibility(self, hidden: bool, now: float) -> None:
        """The page became hidden / visible. With ``when_hidden="pause"`` this closes / reopens."""
        self._hidden = hidden
        if self.when_hidden != "pause":
            return
        state = self._sm.state
        if hidden and state in (State.CONNECTING, State.OPEN, State.RECONNECTING):
            self._reconnect.stayed_up(self._uptime(now))
            self._abort("page hidden")
            self._decoder.end()
            self._reconnect_at = None
            self._set(State.PAUSED)
        elif not hidden and state is State.PAUSED:
            self._start(now)

    def online(self, now: float) -> None:
        """The network came back: a pending reconnect happens now instead of after its delay."""
        if self._sm.state is State.RECONNECTING:
            self._start(now)

    def woke(self, now: float, slept: float) -> None:
        """The machine slept ``slept`` seconds (:mod:`pyrt.engine.wake`): a stream silent for longer than
        ``stall_timeout`` (:data:`WAKE_REPLACE` when that is ``None``) is presumed dead and
        replaced at once, resuming from the last event id; a pending reconnect happens now."""
        state = self._sm.state
        if state is State.RECONNECTING:
            self._start(now)
            return
        limit = self.stall_timeout if self.stall_timeout is not None else WAKE_REPLACE
        if state in (State.OPEN, State.CONNECTING) and slept >= limit:
            self._abort(f"the machine slept for {slept:.0f} s")
            self._stalls += 1
            self._lost(now, SSEStalledError(slept, asleep=True))
            if self._sm.state is State.RECONNECTING:
                self._start(now)

    # -- internals

    def _start(self, now: float) -> None:
        self._request += 1
        self._set(State.CONNECTING)
        self._in_flight = True
        self._activity = now
        self._reconnect_at = None
        self._actions.append(StartRequest(self._request, self.request_headers(), self._reconnect.failures))

    def _abort(self, reason: str) -> None:
        if self._in_flight:
            self._in_flight = False
            self._actions.append(AbortRequest(self._request, reason))

    def _server_floor(self) -> float:
        floor = 0.0
        if self._decoder.retry is not None:
            floor = self._decoder.retry / 1000
        if self._retry_after is not None:
            floor = max(floor, self._retry_after)
            self._retry_after = None
        return min(floor, self.max_server_delay)

    def _lost(self, now: float, error: SSEError) -> None:
        """A connection (or an attempt) is over; schedule the next one or give up."""
        self._decoder.end()
        self._disconnects += 1
        self._retry_or_give_up(now, error, self._server_floor())

    def _finish(self, error: SSEError | None, detail: str, by_client: bool = False) -> None:
        self._decoder.end()
        self._in_flight = False
        self._closed(error, detail, by_client)


# --------------------------------------------------------------------------- native EventSource


class EventSourcePolicy(_Machine):
    """When to create, destroy and re-create a native ``EventSource``.

    Contract for the adapter:

    1. Call :meth:`connect` once; carry out :meth:`actions` after every input.
    2. On :class:`CreateSource`: ``new EventSource(url, ...)`` and attach listeners that report
       :meth:`opened` (``open``), :meth:`received` (every delivered event, with its
       ``lastEventId``) and :meth:`error` (``error``; ``for_good``: the object's ``readyState``
       was ``CLOSED`` then, so it will not reconnect by itself), each with the ``source`` number.
    3. On :class:`DestroySource`: ``close()`` the object and release its listeners.
    4. Keep one timer at :meth:`next_deadline` and call :meth:`tick` when it fires.

    The native object reconnects by itself after a dropped stream (``error`` while it is
    connecting again; it sends ``Last-Event-ID`` itself). When it gives up (an HTTP error, a
    wrong content type, a 204 — the browser does not say which), the policy destroys it and
    creates a new one after a backoff delay, on ``url`` with ``resume_param=<last event id>``
    added, until ``backoff.max_attempts`` is exhausted.
    """

    def __init__(
        self,
        url: str,
        *,
        backoff: Backoff,
        rng: Callable[[], float],
        resume_param: str | None = "lastEventId",
        last_event_id: str = "",
    ) -> None:
        if "\0" in last_event_id or "\r" in last_event_id or "\n" in last_event_id:
            raise ValueError("last_event_id must not contain NUL, CR or LF")
        super().__init__(EVENTSOURCE_TRANSITIONS, backoff, rng)
        self.url = url
        self.resume_param = resume_param
        self._last_event_id = last_event_id
        self._source = 0
        self._alive = False  # a native object exists and must be destroyed to stop

    @property
    def last_event_id(self) -> str:
        return self._last_event_id

    @property
    def source(self) -> int:
        """The generation of the current (or last) native object."""
        return self._source

    def next_deadline(self) -> float | None:
        return self._reconnect_at if self._sm.state is State.RECONNECTING else None

    def source_url(self) -> str:
        """The URL for the next native object (with the resume parameter when there is an id)."""
        if self.resume_param and self._last_event_id:
            return resume_url(self.url, self.resume_param, self._last_event_id)
        return self.url

    def connect(self, now: float) -> None:
        self._check_connect()
        self._create()

    def close(self, now: float) -> None:
        if self._sm.state is State.CLOSED:
            return
        self._finish(None, _CLOSED_BY_APP, by_client=True)

    def opened(self, source: int, now: float) -> None:
        if source != self._source or not self._alive or self._sm.state is State.OPEN:
            return
        self._opened(now)

    def received(self, source: int, last_event_id: str) -> bool:
        """An event arrived on ``source``; returns ``False`` when it must not be delivered."""
        if source != self._source or not self._alive:
            return False
        self._last_event_id = last_event_id
        self._events += 1
        return True

    def error(self, source: int, for_good: bool, now: float, retry_after: float | None = None) -> None:
        """The native ``error`` event; ``for_good``: the object's ``readyState`` was ``CLOSED``.

        ``retry_after``: seconds from the refusing response's ``Retry-After``, when the adapter
        can see it (browsers cannot; the CPython one can): a floor under the next delay.
        """
        if source != self._source or not self._alive:
            return
        self._disconnects += 1
        if not for_good:
            # The browser reconnects by itself (and sends Last-Event-ID).
            self._reconnect.stayed_up(self._uptime(now))
            err: SSEError = SSEStreamEndedError("connection lost; the browser is reconnecting")
            self._last_error = _text(err)
            self._set(State.CONNECTING)
            self._actions.append(Disconnected(err, None, self._reconnect.failures))
            return
        failure = SSENetworkError(
            "the EventSource failed for good (HTTP error, wrong content type or no server)"
        )
        self._alive = False
        self._actions.append(DestroySource(self._source))
        floor = 0.0 if retry_after is None else min(max(retry_after, 0.0), _MAX_SERVER_DELAY)
        self._retry_or_give_up(now, failure, floor)

    def tick(self, now: float) -> None:
        if (
            self._sm.state is State.RECONNECTING
            and self._reconnect_at is not None
            and now >= self._reconnect_at
        ):
            self._create()

    def woke(self, now: float, slept: float) -> None:
        """The machine slept ``slept`` seconds (:mod:`pyrt.engine.wake`): a pending re-creation happens
        now, and after a minute or more asleep the native object — whose connection the server
        has dropped by then, unseen — is replaced at once (resuming from the last event id)."""
        state = self._sm.state
        if state is State.RECONNECTING:
            self._create()
        elif state in (State.OPEN, State.CONNECTING) and slept >= WAKE_REPLACE and self._alive:
            if state is State.OPEN:
                self._reconnect.stayed_up(self._uptime(now))
            err = SSEStreamEndedError(f"the machine slept for {slept:.0f} s: connection presumed dead")
            self._last_error = _text(err)
            self._disconnects += 1
            self._actions.append(DestroySource(self._source))
            self._actions.append(Disconnected(err, 0.0, self._reconnect.failures))
            self._create()

    def _create(self) -> None:
        self._source += 1
        self._alive = True
        self._set(State.CONNECTING)
        self._reconnect_at = None
        self._actions.append(CreateSource(self._source, self.source_url(), self._reconnect.failures))

    def _finish(self, error: SSEError | None, detail: str, by_client: bool = False) -> None:
        if self._alive:
            self._alive = False
            self._actions.append(DestroySource(self._source))
        self._closed(error, detail, by_client)
