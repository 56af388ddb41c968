"""The SSE client engines, scripted with a fake clock: statuses, backoff, stalls, visibility."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrt.engine.backoff import Backoff
from pyrt.engine.sse import (
    WAKE_REPLACE,
    AbortRequest,
    Closed,
    CreateSource,
    DestroySource,
    Disconnected,
    EventSourcePolicy,
    FetchSSEEngine,
    SSEAction,
    StartRequest,
    classify_response,
    parse_retry_after,
    resume_url,
)
from pyrt.engine.states import ReadyState, State, StateChanged
from pyrt.errors import (
    SSEContentTypeError,
    SSEHTTPError,
    SSENetworkError,
    SSERetriesExhaustedError,
    SSEStalledError,
    SSEStreamEndedError,
)

pytestmark = pytest.mark.unit

# Deterministic delays: 0.1, 0.2, 0.4, ... capped at 1.6; reset after 5 s of uptime.
EXACT = Backoff(initial=0.1, maximum=1.6, jitter="none", min_uptime=5.0)
SSE = "text/event-stream"


def engine(**kwargs: object) -> FetchSSEEngine:
    kwargs.setdefault("backoff", EXACT)
    kwargs.setdefault("rng", lambda: 0.5)
    return FetchSSEEngine(**kwargs)  # type: ignore[arg-type]


def opened(eng: FetchSSEEngine, now: float = 0.0) -> FetchSSEEngine:
    """Connect and open; the actions of that are drained."""
    eng.connect(now)
    assert eng.response(eng.request, 200, SSE, now)
    acts(eng)
    return eng


def acts(machine: FetchSSEEngine | EventSourcePolicy) -> list[SSEAction]:
    """The actions decided since the last call, without the state reports (checked on their own)."""
    return [a for a in machine.actions() if not isinstance(a, StateChanged)]


def only(actions: list[SSEAction], kind: type) -> list[SSEAction]:
    return [a for a in actions if isinstance(a, kind)]


# -- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content_type", "verdict"),
    [
        (200, "text/event-stream", "open"),
        (200, "Text/Event-Stream; charset=windows-1252", "open"),
        (200, "text/event-stream;", "open"),
        (200, "text/plain", "fatal"),
        (200, None, "fatal"),
        (204, None, "stop"),
        (201, SSE, "fatal"),
        (301, SSE, "fatal"),
        (400, None, "fatal"),
        (401, None, "fatal"),
        (403, None, "fatal"),
        (404, None, "fatal"),
        (408, None, "retry"),
        (429, None, "retry"),
        (500, None, "retry"),
        (503, SSE, "retry"),
        (599, None, "retry"),
        (0, None, "fatal"),
    ],
)
def test_classify_response(status: int, content_type: str | None, verdict: str) -> None:
    assert classify_response(status, content_type) == verdict


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0


def test_retry_after_as_an_http_date_needs_the_wall_clock() -> None:
    wall = 1_700_000_000.0
    header = email.utils.formatdate(wall + 30, usegmt=True)
    assert parse_retry_after(header, wall_time=wall) == pytest.approx(30.0)
    assert parse_retry_after(header) is None
    past = email.utils.formatdate(wall - 30, usegmt=True)
    assert parse_retry_after(past, wall_time=wall) == 0.0


@pytest.mark.parametrize("junk", [None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2020"])
def test_retry_after_junk_is_ignored(junk: str | None) -> None:
    assert parse_retry_after(junk, wall_time=0.0) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/sse", "/sse?lastEventId=12-3"),
        ("/sse?channel=a", "/sse?channel=a&lastEventId=12-3"),
        ("/sse?lastEventId=1-1&channel=a", "/sse?channel=a&lastEventId=12-3"),
        ("http://h:1/sse?channel=a%20b#frag", "http://h:1/sse?channel=a%20b&lastEventId=12-3#frag"),
        ("/sse?", "/sse?lastEventId=12-3"),
    ],
)
def test_resume_url_sets_one_parameter_and_keeps_the_rest(url: str, expected: str) -> None:
    assert resume_url(url, "lastEventId", "12-3") == expected


def test_resume_url_percent_encodes_the_id_and_removes_the_parameter_for_an_empty_id() -> None:
    assert resume_url("/s", "last", "a b&c=d/é") == "/s?last=a%20b%26c%3Dd%2F%C3%A9"
    assert resume_url("/s?x=1&last=9", "last", "") == "/s?x=1"


# -- FetchSSEEngine: opening ---------------------------------------------------------------


def test_connect_sends_accept_and_the_users_headers() -> None:
    eng = engine(headers={"Authorization": "Bearer t"})
    eng.connect(0.0)
    assert acts(eng) == [StartRequest(1, {"Authorization": "Bearer t", "Accept": SSE}, attempt=0)]
    assert eng.state is State.CONNECTING
    assert eng.ready_state is ReadyState.CONNECTING


def test_a_user_accept_header_is_kept_and_a_user_last_event_id_is_replaced() -> None:
    eng = engine(headers={"accept": "text/event-stream, */*", "Last-Event-ID": "forged"})
    eng.connect(0.0)
    (start,) = acts(eng)
    assert isinstance(start, StartRequest)
    assert start.headers == {"accept": "text/event-stream, */*"}


def test_a_known_last_event_id_is_sent_on_the_first_request() -> None:
    eng = engine(last_event_id="7-1")
    eng.connect(0.0)
    (start,) = acts(eng)
    assert isinstance(start, StartRequest)
    assert start.headers["Last-Event-ID"] == "7-1"


def test_200_event_stream_opens_and_events_flow() -> None:
    eng = engine()
    eng.connect(0.0)
    acts(eng)
    assert eng.response(1, 200, "text/event-stream; charset=utf-8", 0.1) is True
    assert acts(eng) == []
    assert eng.state is State.OPEN
    assert eng.ready_state is ReadyState.OPEN
    body = b"id: 1\ndata: a\n\nevent: x\ndata: b\n\n"
    events = eng.received(1, body, 0.2)
    assert [(e.type, e.data, e.id) for e in events] == [("message", "a", "1"), ("x", "b", "1")]
    assert eng.last_event_id == "1"
    assert eng.stats.events == 2
    assert eng.stats.bytes == len(body)
    assert eng.stats.opens == 1


def test_connect_twice_is_refused_and_changes_nothing() -> None:
    eng = opened(engine())
    with pytest.raises(RuntimeError, match="connect\\(\\) called twice"):
        eng.connect(1.0)
    assert eng.state is State.OPEN
    assert acts(eng) == []


# -- status policy -------------------------------------------------------------------------


def test_204_stops_for_good_without_an_error() -> None:
    eng = engine()
    eng.connect(0.0)
    acts(eng)
    assert eng.response(1, 204, None, 0.0) is False
    actions = acts(eng)
    assert actions[0] == AbortRequest(1, "HTTP 204")
    assert isinstance(actions[1], Closed)
    assert actions[1].error is None
    assert "204" in actions[1].detail
    assert eng.state is State.CLOSED
    assert eng.ready_state is ReadyState.CLOSED
    assert eng.next_deadline() is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_client_errors_stop_with_an_error_that_carries_the_status(status: int) -> None:
    eng = engine()
    eng.connect(0.0)
    acts(eng)
    assert eng.response(1, status, "text/html", 0.0) is False
    closed = acts(eng)[-1]
    assert isinstance(closed, Closed)
    assert isinstance(closed.error, SSEHTTPError)
    assert closed.error.status == status
    assert closed.error.retryable is False
    assert eng.state is State.CLOSED


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_server_errors_and_429_retry_with_backoff(status: int) -> None:
    eng = engine()
    eng.connect(0.0)
    acts(eng)
    eng.response(1, status, None, 0.0)
    abort, lost = acts(eng)
    assert abort == AbortRequest(1, f"HTTP {status}")
    assert isinstance(lost, Disconnected)
    assert isinstance(lost.error, SSEHTTPError)
    assert lost.error.status == status
    assert lost.error.retryable
    assert lost.delay == pytest.approx(0.1)
    assert eng.state is State.RECONNECTING
    assert eng.next_deadline() == pytest.approx(0.1)


def test_wrong_content_type_is_fatal() -> None:
    eng = engine()
    eng.connect(0.0)
    acts(eng)
    eng.response(1, 200, "application/json", 0.0)
    closed = acts(eng)[-1]
    assert isinstance(closed, Closed)
    assert isinstance(closed.error, SSEContentTypeError)
    assert closed.error.content_type == "application/json"


def test_retry_after_seconds_is_a_floor_for_that_one_reconnect() -> None:
    eng = engine()
    eng.connect(0.0)
    acts(eng)
    eng.response(1, 503, None, 0.0, retry_after="7")
    lost = only(acts(eng), Disconnected)[0]
    assert isinstance(lost, Disconnected)
    assert lost.delay == 7.0
    eng.tick(7.0)
    acts(eng)
    eng.failed(2, 7.0)
    lost = only(acts(eng), Disconnected)[0]
    assert isinstance(lost, Disconnected)
    assert lost.delay == pytest.approx(0.2)  # plain backoff again


def test_retry_after_http_date_uses_the_wall_clock() -> None:
    eng = engine()
    eng.connect(0.0)
    acts(eng)
    wall = 1_700_000_000.0
    date = email.utils.formatdate(wall + 12, usegmt=True)
    eng.response(1, 429, None, 0.0, retry_after=date, wall_time=wall)
    lost = only(acts(eng), Disconnected)[0]
    assert isinstance(lost, Disconnected)
    assert lost.delay == pytest.approx(12.0)


def test_server_delays_are_capped() -> None:
    eng = engine(max_server_delay=60.0)
    eng.connect(0.0)
    acts(eng)
    eng.response(1, 503, None, 0.0, retry_after="86400")
    lost = only(acts(eng), Disconnected)[0]
    assert isinstance(lost, Disconnected)
    assert lost.delay == 60.0


# -- reconnecting --------------------------------------------------------------------------


def test_stream_end_reconnects_with_last_event_id_after_the_backoff_delay() -> None:
    eng = opened(engine())
    eng.received(1, b"id: 41\ndata: a\n\nid: 42\ndata: incomplete\n", 0.5)
    eng.ended(1, 1.0)
    (lost,) = acts(eng)
    assert isinstance(lost, Disconnected)
    assert isinstance(lost.error, SSEStreamEndedError)
    assert (lost.delay, lost.attempt) == (pytest.approx(0.1), 1)
    assert eng.ready_state is ReadyState.CONNECTING
    eng.tick(1.05)
    assert acts(eng) == []  # not due yet
    eng.tick(1.1)
    assert acts(eng) == [StartRequest(2, {"Accept": SSE, "Last-Event-ID": "41"}, attempt=1)]


def test_the_streams_retry_field_is_a_floor_under_the_backoff() -> None:
    eng = opened(engine())
    eng.received(1, b"retry: 2000\n\n", 0.0)
    eng.ended(1, 0.0)
    (lost,) = acts(eng)
    assert isinstance(lost, Disconnected)
    assert lost.delay == 2.0
    assert eng.retry == 2000


def test_backoff_wins_over_a_smaller_retry_field() -> None:
    eng = opened(engine(backoff=Backoff(initial=0.5, jitter="none")))
    eng.received(1, b"retry: 10\n\n", 0.0)
    eng.ended(1, 0.0)
    (lost,) = acts(eng)
    assert isinstance(lost, Disconnected)
    assert lost.delay == 0.5


def test_failed_attempts_back_off_exponentially_and_use_the_rng() -> None:
    eng = engine(backoff=Backoff(initial=1.0, maximum=100.0), rng=lambda: 0.25)
    eng.connect(0.0)
    delays = []
    now = 0.0
    for _ in range(4):
        acts(eng)
        eng.failed(eng.request, now, "connection refused")
        (lost,) = acts(eng)
        assert isinstance(lost, Disconnected)
        assert isinstance(lost.error, SSENetworkError)
        assert lost.delay is not None
        delays.append(lost.delay)
        now += lost.delay
        eng.tick(now)
    assert delays == [0.25, 0.5, 1.0, 2.0]  # full jitter: base * rng()


def test_attempts_exhausted_closes_with_the_last_error_as_cause() -> None:
    eng = engine(backoff=Backoff(initial=0.1, jitter="none", max_attempts=2))
    eng.connect(0.0)
    now = 0.0
    for _ in range(2):
        acts(eng)
        eng.failed(eng.request, now, "refused")
        now += 1.0
        eng.tick(now)
    acts(eng)
    eng.failed(eng.request, now, "refused again")
    (closed,) = acts(eng)
    assert isinstance(closed, Closed)
    assert isinstance(closed.error, SSERetriesExhaustedError)
    assert closed.error.attempts == 2
    assert isinstance(closed.error.__cause__, SSENetworkError)
    assert str(closed.error.__cause__) == "refused again"
    assert eng.state is State.CLOSED


def test_a_flapping_server_does_not_reset_the_backoff_but_a_long_connection_does() -> None:
    eng = opened(engine())
    now = 0.0
    attempts = []
    for _ in range(3):  # open, then dropped after 1 s: shorter than min_uptime
        now += 1.0
        eng.ended(eng.request, now)
        (lost,) = acts(eng)
        assert isinstance(lost, Disconnected)
        attempts.append(lost.attempt)
        now += 2.0
        eng.tick(now)
        acts(eng)
        eng.response(eng.request, 200, SSE, now)
        acts(eng)
    assert attempts == [1, 2, 3]
    now += 5.0  # up for min_uptime
    eng.ended(eng.request, now)
    (lost,) = acts(eng)
    assert isinstance(lost, Disconnected)
    assert lost.attempt == 1
    assert lost.delay == pytest.approx(0.1)


def test_online_reconnects_at_once_when_waiting() -> None:
    eng = engine(backoff=Backoff(initial=10.0, maximum=10.0, jitter="none"))
    eng.connect(0.0)
    acts(eng)
    eng.failed(1, 0.0)
    acts(eng)
    eng.online(0.5)
    assert acts(eng) == [StartRequest(2, {"Accept": SSE}, attempt=1)]


# -- stalls --------------------------------------------------------------------------------


def test_a_silent_stream_is_aborted_and_reconnected_after_stall_timeout() -> None:
    eng = opened(engine(stall_timeout=2.0))
    assert eng.next_deadline() == 2.0
    eng.received(1, b": keep-alive\n", 1.5)  # comments count as life
    assert eng.next_deadline() == 3.5
    eng.tick(2.0)  # the old timer fires early: nothing happens
    assert acts(eng) == []
    eng.tick(3.5)
    abort, lost = acts(eng)
    assert abort == AbortRequest(1, "stalled")
    assert isinstance(lost, Disconnected)
    assert isinstance(lost.error, SSEStalledError)
    assert eng.stats.stalls == 1


def test_a_request_that_never_answers_also_stalls() -> None:
    eng = engine(stall_timeout=1.0)
    eng.connect(0.0)
    acts(eng)
    eng.tick(1.0)
    abort, lost = acts(eng)
    assert abort == AbortRequest(1, "stalled")
    assert isinstance(lost, Disconnected)


def test_stall_detection_can_be_turned_off() -> None:
    eng = opened(engine(stall_timeout=None))
    assert eng.next_deadline() is None


def test_reports_about_an_aborted_request_are_ignored() -> None:
    eng = opened(engine(stall_timeout=1.0))
    eng.tick(1.0)
    acts(eng)
    eng.tick(10.0)  # reconnect: request 2
    acts(eng)
    assert eng.received(1, b"data: late\n\n", 10.1) == []
    eng.ended(1, 10.1)
    eng.failed(1, 10.1)
    assert eng.response(1, 200, SSE, 10.1) is False
    assert acts(eng) == []
    assert eng.state is State.CONNECTING


# -- waking from sleep -----------------------------------------------------------------------


def test_a_long_sleep_replaces_the_stream_at_once_resuming_from_the_last_id() -> None:
    eng = opened(engine(stall_timeout=45.0))
    eng.received(1, b"id: 7\ndata: x\n\n", 1.0)
    eng.woke(2.0, 44.0)  # shorter than the stall timeout: the stream may be alive
    assert acts(eng) == []
    eng.woke(3.0, 600.0)
    abort, lost, start = acts(eng)
    assert abort == AbortRequest(1, "the machine slept for 600 s")
    assert isinstance(lost, Disconnected)
    assert isinstance(lost.error, SSEStalledError)
    assert str(lost.error) == "the machine slept for 600 s: connection presumed dead, reconnecting"
    assert start == StartRequest(2, {"Accept": SSE, "Last-Event-ID": "7"}, attempt=1)


def test_without_a_stall_timeout_a_sleep_of_a_minute_replaces_the_stream() -> None:
    eng = opened(engine(stall_timeout=None))
    eng.woke(1.0, WAKE_REPLACE - 1)
    assert acts(eng) == []
    eng.woke(2.0, WAKE_REPLACE)
    assert [type(a) for a in acts(eng)] == [AbortRequest, Disconnected, StartRequest]


def test_waking_while_waiting_to_reconnect_reconnects_now() -> None:
    eng = engine(backoff=Backoff(initial=10.0, maximum=10.0, jitter="none"))
    eng.connect(0.0)
    eng.failed(1, 0.0)
    acts(eng)
    eng.woke(0.5, 3.0)
    assert acts(eng) == [StartRequest(2, {"Accept": SSE}, attempt=1)]


def test_a_native_source_is_replaced_after_a_minute_asleep_and_says_so() -> None:
    pol = policy()
    pol.connect(0.0)
    pol.opened(1, 0.1)
    pol.received(1, "12-3")
    acts(pol)
    pol.woke(1.0, 30.0)  # the browser's own reconnect copes with a short sleep
    assert acts(pol) == []
    pol.woke(2.0, 3600.0)
    destroy, lost, create = acts(pol)
    assert destroy == DestroySource(1)
    assert isinstance(lost, Disconnected)
    assert "slept for 3600 s" in str(lost.error)
    assert create == CreateSource(2, "/sse?channel=news&lastEventId=12-3", attempt=0)
    assert pol.state is State.CONNECTING
    assert pol.stats.disconnects == 1


def test_a_native_source_waiting_to_be_recreated_is_recreated_on_wake() -> None:
    pol = policy(backoff=Backoff(initial=30.0, maximum=30.0, jitter="none"))
    pol.connect(0.0)
    pol.error(1, True, 0.0)
    acts(pol)
    pol.woke(1.0, 5.0)
    assert acts(pol) == [CreateSource(2, "/sse?channel=news", attempt=1)]


# -- visibility ----------------------------------------------------------------------------


def test_pause_closes_while_hidden_and_resumes_with_last_event_id_when_visible() -> None:
    eng = opened(engine(when_hidden="pause"))
    eng.received(1, b"id: 9\ndata: x\n\n", 0.1)
    eng.visibility(True, 0.2)
    assert acts(eng) == [AbortRequest(1, "page hidden")]
    assert eng.state is State.PAUSED
    assert eng.next_deadline() is None
    eng.visibility(False, 60.0)
    assert acts(eng) == [StartRequest(2, {"Accept": SSE, "Last-Event-ID": "9"}, attempt=0)]


def test_pause_while_waiting_cancels_the_reconnect_timer() -> None:
    eng = engine(when_hidden="pause")
    eng.connect(0.0)
    eng.failed(1, 0.0)
    acts(eng)
    eng.visibility(True, 0.01)
    assert acts(eng) == []
    assert eng.next_deadline() is None
    eng.tick(100.0)
    assert acts(eng) == []


def test_connect_while_hidden_waits_for_visibility_when_pausing() -> None:
    eng = engine(when_hidden="pause")
    eng.visibility(True, 0.0)
    eng.connect(0.0)
    assert acts(eng) == []
    assert eng.state is State.PAUSED
    eng.visibility(False, 1.0)
    assert isinstance(acts(eng)[0], StartRequest)


def test_keep_ignores_visibility() -> None:
    eng = opened(engine())
    eng.visibility(True, 1.0)
    assert acts(eng) == []
    assert eng.state is State.OPEN


def test_when_hidden_must_be_known() -> None:
    with pytest.raises(ValueError, match="when_hidden"):
        engine(when_hidden="sleep")


# -- closing -------------------------------------------------------------------------------


def test_close_aborts_the_request_and_is_final() -> None:
    eng = opened(engine())
    eng.close(1.0)
    assert acts(eng) == [
        AbortRequest(1, "closed by the application"),
        Closed(None, "closed by the application", by_client=True),
    ]
    eng.close(2.0)
    eng.tick(100.0)
    eng.visibility(False, 100.0)
    eng.online(100.0)
    assert acts(eng) == []
    assert eng.received(1, b"data: x\n\n", 100.0) == []
    assert eng.ready_state is ReadyState.CLOSED


def test_close_while_waiting_has_nothing_to_abort() -> None:
    eng = engine()
    eng.connect(0.0)
    eng.failed(1, 0.0)
    acts(eng)
    eng.close(0.01)
    assert acts(eng) == [Closed(None, "closed by the application", by_client=True)]
    assert eng.next_deadline() is None


# -- invariants under any sequence of inputs -------------------------------------------------

STEP = st.sampled_from(
    [
        "response200",
        "response500",
        "response401",
        "response204",
        "chunk",
        "end",
        "fail",
        "tick",
        "hide",
        "show",
        "online",
        "close",
    ]
)


@settings(max_examples=300)
@given(steps=st.lists(st.tuples(STEP, st.floats(min_value=0, max_value=3)), max_size=40))
def test_any_input_sequence_keeps_the_engine_consistent(steps: list[tuple[str, float]]) -> None:
    eng = engine(
        when_hidden="pause", stall_timeout=1.0, backoff=Backoff(initial=0.1, maximum=1.0, max_attempts=5)
    )
    now = 0.0
    eng.connect(now)
    in_flight: int | None = None
    closed = 0
    reported = State.IDLE
    for step, dt in steps:
        now += dt
        req = eng.request
        if step.startswith("response"):
            eng.response(req, int(step[8:]), SSE, now)
        elif step == "chunk":
            eng.received(req, b"id: 1\ndata: x\n\n", now)
        elif step == "end":
            eng.ended(req, now)
        elif step == "fail":
            eng.failed(req, now)
        elif step == "tick":
            deadline = eng.next_deadline()
            if deadline is not None:
                now = max(now, deadline)
            eng.tick(now)
        elif step in ("hide", "show"):
            eng.visibility(step == "hide", now)
        elif step == "online":
            eng.online(now)
        else:
            eng.close(now)
        for action in eng.actions():
            if isinstance(action, StateChanged):
                assert action.old is reported
                reported = action.new
            elif isinstance(action, StartRequest):
                assert in_flight is None, "a new request while another is in flight"
                in_flight = action.request
            elif isinstance(action, AbortRequest):
                assert action.request == in_flight
                in_flight = None
            elif isinstance(action, Closed):
                closed += 1
            elif isinstance(action, Disconnected):
                assert action.delay is not None
                assert action.delay >= 0
        if eng.state in (State.RECONNECTING, State.PAUSED, State.CLOSED):
            # A request that ended or failed by itself needs no abort.
            in_flight = None
        assert (eng.next_deadline() is not None) == (
            eng.state in (State.RECONNECTING, State.CONNECTING, State.OPEN)
        )
        assert reported is eng.state
    assert closed == (1 if eng.state is State.CLOSED else 0)


# -- EventSourcePolicy ---------------------------------------------------------------------


def policy(url: str = "/sse?channel=news", **kwargs: object) -> EventSourcePolicy:
    kwargs.setdefault("backoff", EXACT)
    kwargs.setdefault("rng", lambda: 0.5)
    return EventSourcePolicy(url, **kwargs)  # type: ignore[arg-type]


def test_native_source_is_created_on_the_url_and_opens() -> None:
    pol = policy()
    pol.connect(0.0)
    assert acts(pol) == [CreateSource(1, "/sse?channel=news", attempt=0)]
    pol.opened(1, 0.1)
    assert acts(pol) == []
    assert pol.state is State.OPEN
    assert pol.ready_state is ReadyState.OPEN
    assert pol.received(1, "5-0")
    assert pol.last_event_id == "5-0"
    assert pol.stats.events == 1


def test_native_reconnects_are_left_to_the_browser() -> None:
    pol = policy()
    pol.connect(0.0)
    pol.opened(1, 0.0)
    acts(pol)
    pol.error(1, False, 1.0)
    (lost,) = acts(pol)
    assert isinstance(lost, Disconnected)
    assert lost.delay is None
    assert pol.ready_state is ReadyState.CONNECTING
    assert pol.next_deadline() is None
    pol.opened(1, 2.0)
    assert acts(pol) == []
    assert pol.state is State.OPEN
    assert pol.stats.opens == 2


def test_a_closed_native_source_is_recreated_with_backoff_and_the_resume_parameter() -> None:
    pol = policy()
    pol.connect(0.0)
    pol.opened(1, 0.0)
    pol.received(1, "12-3")
    acts(pol)
    pol.error(1, True, 1.0)
    destroy, lost = acts(pol)
    assert destroy == DestroySource(1)
    assert isinstance(lost, Disconnected)
    assert lost.delay == pytest.approx(0.1)
    assert pol.next_deadline() == pytest.approx(1.1)
    pol.tick(1.1)
    assert acts(pol) == [CreateSource(2, "/sse?channel=news&lastEventId=12-3", attempt=1)]


def test_a_retry_after_seen_by_the_adapter_is_a_floor_under_the_recreation_delay() -> None:
    pol = policy()
    pol.connect(0.0)
    acts(pol)
    pol.error(1, True, 1.0, retry_after=3.0)  # a CPython adapter saw a 503's header
    (lost,) = only(acts(pol), Disconnected)
    assert lost.delay == 3.0
    assert pol.next_deadline() == 4.0
    pol.tick(4.0)
    acts(pol)
    pol.error(2, True, 5.0, retry_after=10_000.0)
    (capped,) = only(acts(pol), Disconnected)
    assert capped.delay == 300.0  # never more than five minutes


def test_recreation_without_an_id_or_with_resume_disabled_keeps_the_url() -> None:
    pol = policy(resume_param=None, last_event_id="4")
    assert pol.source_url() == "/sse?channel=news"
    assert policy().source_url() == "/sse?channel=news"
    assert policy(last_event_id="4").source_url() == "/sse?channel=news&lastEventId=4"


def test_events_from_a_destroyed_native_source_are_dropped() -> None:
    pol = policy()
    pol.connect(0.0)
    pol.error(1, True, 0.0)
    pol.tick(1.0)
    acts(pol)
    assert not pol.received(1, "x")
    pol.opened(1, 1.0)
    pol.error(1, True, 1.0)
    assert acts(pol) == []
    assert pol.last_event_id == ""


def test_native_attempts_exhausted_stop_for_good() -> None:
    pol = policy(backoff=Backoff(initial=0.1, jitter="none", max_attempts=1))
    pol.connect(0.0)
    pol.error(1, True, 0.0)
    pol.tick(1.0)
    acts(pol)
    pol.error(2, True, 1.0)
    destroy, closed = acts(pol)
    assert destroy == DestroySource(2)
    assert isinstance(closed, Closed)
    assert isinstance(closed.error, SSERetriesExhaustedError)
    assert pol.ready_state is ReadyState.CLOSED


def test_native_close_destroys_the_live_source_once() -> None:
    pol = policy()
    pol.connect(0.0)
    acts(pol)
    pol.close(1.0)
    assert acts(pol) == [DestroySource(1), Closed(None, "closed by the application", by_client=True)]
    pol.close(2.0)
    assert acts(pol) == []


def test_native_close_while_waiting_destroys_nothing_more() -> None:
    pol = policy()
    pol.connect(0.0)
    pol.error(1, True, 0.0)
    acts(pol)
    pol.close(0.05)
    assert acts(pol) == [Closed(None, "closed by the application", by_client=True)]
    pol.tick(10.0)
    assert acts(pol) == []


def test_native_long_connection_resets_the_backoff() -> None:
    pol = policy()
    pol.connect(0.0)
    for t in (0.0, 10.0):
        pol.error(pol.source, True, t)
        pol.tick(t + 5.0)
        acts(pol)
    pol.opened(pol.source, 20.0)
    acts(pol)
    pol.error(pol.source, True, 26.0)
    lost = only(acts(pol), Disconnected)[0]
    assert isinstance(lost, Disconnected)
    assert lost.attempt == 1


# -- state reports -------------------------------------------------------------------------


def states_of(machine: FetchSSEEngine | EventSourcePolicy) -> list[State]:
    return [a.new for a in machine.actions() if isinstance(a, StateChanged)]


def test_the_fetch_engine_reports_every_move_with_the_shared_state_names() -> None:
    eng = engine(when_hidden="pause")
    eng.connect(0.0)
    eng.response(1, 200, SSE, 0.0)
    eng.ended(1, 1.0)
    eng.visibility(True, 1.0)
    eng.visibility(False, 2.0)
    eng.close(3.0)
    assert states_of(eng) == [
        State.CONNECTING,
        State.OPEN,
        State.RECONNECTING,
        State.PAUSED,
        State.CONNECTING,
        State.CLOSED,
    ]


def test_a_native_source_reconnecting_by_itself_is_connecting_and_a_recreation_is_reconnecting() -> None:
    pol = policy()
    pol.connect(0.0)
    pol.opened(1, 0.0)
    pol.error(1, False, 1.0)
    pol.error(1, True, 2.0)
    pol.tick(3.0)
    expected = [State.CONNECTING, State.OPEN, State.CONNECTING, State.RECONNECTING, State.CONNECTING]
    assert states_of(pol) == expected


def test_a_close_event_says_who_ended_the_stream() -> None:
    stopped = engine()
    stopped.connect(0.0)
    stopped.response(1, 204, None, 0.0)
    refused = engine()
    refused.connect(0.0)
    refused.response(1, 401, None, 0.0)
    by_app = engine()
    by_app.connect(0.0)
    by_app.close(0.0)
    (a,), (b,), (c,) = (only(acts(e), Closed) for e in (stopped, refused, by_app))
    assert isinstance(a, Closed)
    assert isinstance(b, Closed)
    assert isinstance(c, Closed)
    assert (a.by_client, a.error) == (False, None)
    assert (b.by_client, type(b.error)) == (False, SSEHTTPError)
    assert (c.by_client, c.error, c.detail) == (True, None, "closed by the application")
