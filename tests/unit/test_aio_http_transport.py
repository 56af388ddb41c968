"""The HTTP binding's socket: a streamed GET for the server's frames, POSTs in order for ours."""

from __future__ import annotations

from typing import Any

from pyrt.aio.http_transport import POST_RETRIES, HttpTransport, http_url
from pyrt.testing import FakeFetchTransport
from pyrt.wire import codec
from pyrt.wire.frames import Pong, Welcome


class Socket:
    """What the transport reports, as a client's engine would see it."""

    def __init__(self) -> None:
        self.opened = 0
        self.messages: list[Any] = []
        self.closed: list[tuple[int, str, bool]] = []

    def socket_opened(self) -> None:
        self.opened += 1

    def socket_message(self, data: Any) -> None:
        self.messages.append(data)

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None:
        self.closed.append((code, reason, was_clean))


def event(frame: str) -> str:
    return f"data: {frame}\n\n"


WELCOME = codec.encode(Welcome(session="s1", server="pyrt", key="k/1+"))


def connected(
    url: str = "ws://h:8000/ws?cid=c1",
) -> tuple[HttpTransport, FakeFetchTransport, FakeFetchTransport, Socket]:
    stream, posts, socket = FakeFetchTransport(), FakeFetchTransport(), Socket()
    transport = HttpTransport(stream, posts)
    transport.open(url, ["pyrt.v1.batch", "pyrt.v1", "bearer.tok"], socket)
    return transport, stream, posts, socket


def test_the_stream_is_a_get_of_the_same_url_over_http_with_the_token_as_a_header() -> None:
    _transport, stream, _posts, socket = connected()
    request = stream.request
    assert request is not None
    assert (request.method, request.url) == ("GET", "http://h:8000/ws?cid=c1")
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"] == "Bearer tok"
    assert "tok" not in request.url
    assert stream.respond(200)
    assert socket.opened == 1
    stream.send(event(WELCOME) + event(codec.encode(Pong(3))))
    assert socket.messages == [WELCOME, '{"type":"pong","t":3}']


def test_frames_wait_for_the_key_then_go_in_order_one_post_at_a_time() -> None:
    transport, stream, posts, _socket = connected()
    stream.respond(200)
    transport.send('{"type":"ping","t":1}')
    assert posts.requests == []  # no key yet
    stream.send(event(WELCOME))
    first = posts.request
    assert first is not None
    assert (first.method, first.url) == ("POST", "http://h:8000/ws?cid=c1&key=k%2F1%2B&seq=1")
    assert first.body == '{"type":"ping","t":1}'
    assert first.headers["Authorization"] == "Bearer tok"
    transport.send('{"type":"ping","t":2}')
    transport.send('{"type":"ping","t":3}')
    assert len(posts.requests) == 1  # one in flight
    assert transport.buffered_amount() > 0
    posts.respond(204)
    second = posts.request
    assert second is not None
    assert second.url.endswith("seq=2")
    assert second.body == '{"type":"ping","t":2}\n{"type":"ping","t":3}'
    posts.respond(204)
    assert transport.buffered_amount() == 0


def test_a_post_lost_on_the_network_is_sent_again_as_it_was_then_given_up() -> None:
    transport, stream, posts, socket = connected()
    stream.respond(200)
    stream.send(event(WELCOME))
    transport.send("x")
    for _ in range(POST_RETRIES):
        posts.fail("connection reset")
        again = posts.request
        assert again is not None
        assert (again.url.endswith("seq=1"), again.body) == (True, "x")
    posts.fail("connection reset")
    assert socket.closed == [(1006, f"a POST failed {POST_RETRIES + 1} times: connection reset", False)]
    assert stream.requests[0].aborted


def test_a_post_the_server_no_longer_knows_ends_the_connection() -> None:
    transport, stream, posts, socket = connected()
    stream.respond(200)
    stream.send(event(WELCOME))
    transport.send("x")
    posts.respond(404)
    assert socket.closed == [(1006, "the server no longer knows this connection (HTTP 404)", False)]


def test_the_servers_close_event_ends_the_connection_with_its_code_and_reason() -> None:
    _transport, stream, _posts, socket = connected()
    stream.respond(200)
    close = codec.encode_http_close(4001, "token expired: reconnect with a fresh token")
    assert not stream.send(event(WELCOME) + f"event: close\ndata: {close}\n\n" + event("late"))
    assert socket.closed == [(4001, "token expired: reconnect with a fresh token", True)]
    assert socket.messages == [WELCOME]


def test_a_stream_that_ends_or_fails_is_a_lost_connection() -> None:
    for end in ("end", "fail"):
        _transport, stream, _posts, socket = connected()
        stream.respond(200)
        stream.send(event(WELCOME))
        if end == "end":
            stream.end()
            assert socket.closed == [(1006, "the stream ended without a close", False)]
        else:
            stream.fail("network error")
            assert socket.closed == [(1006, "network error", False)]


def test_a_stream_refused_for_now_passes_on_its_retry_after() -> None:
    _transport, stream, _posts, socket = connected()
    stream.respond(503, "text/plain", retry_after="7")
    assert socket.closed == [(1006, "HTTP 503 to the stream (text/plain) retry_after=7", False)]


def test_a_refused_stream_is_reported_with_its_status() -> None:
    _transport, stream, _posts, socket = connected()
    assert not stream.respond(404, "text/plain")
    assert socket.opened == 0
    assert socket.closed == [(1006, "HTTP 404 to the stream (text/plain)", False)]


def test_close_posts_what_waits_with_the_close_and_reports_when_the_server_answered() -> None:
    transport, stream, posts, socket = connected()
    stream.respond(200)
    stream.send(event(WELCOME))
    transport.send("last")
    posts.respond(204)
    transport.close(1000, "bye", detach=False)
    final = posts.request
    assert final is not None
    assert final.url.endswith("seq=2&close=1000")
    assert socket.closed == []
    posts.respond(204)
    assert socket.closed == [(1000, "bye", True)]
    assert stream.requests[0].aborted


def test_a_detached_close_reports_nothing_and_a_close_before_the_key_just_aborts() -> None:
    transport, stream, posts, socket = connected()
    stream.respond(200)
    stream.send(event(WELCOME))
    transport.close(4000, "given up", detach=True)
    posts.respond(204)
    assert socket.closed == []
    transport, stream, posts, socket = connected()
    transport.close(1000, "", detach=False)
    assert socket.closed == [(1000, "", True)]
    assert stream.requests[0].aborted
    assert posts.requests == []


def test_urls_map_from_websocket_to_http() -> None:
    assert http_url("ws://a/ws") == "http://a/ws"
    assert http_url("wss://a/ws?x=1") == "https://a/ws?x=1"
    assert http_url("/ws") == "/ws"
