"""Every exception of the pyrt clients, in one place. Each message names the exact mistake or failure.

Every class derives from :class:`PyrtError`; misuse errors also derive from the built-in class a
Python user would expect (``TypeError``, ``ValueError``, ``RuntimeError``, ``TimeoutError``), so
``except ValueError`` keeps working::

    PyrtError
    ├── AckTimeout (+ TimeoutError)       no ack after every retry (send_with_ack, publish)
    ├── AckError                          the server refused or failed one message
    ├── QueueFull                         the outgoing queue dropped or refused a message
    ├── ServerError                       an ``error`` frame about no message in particular
    │   └── ChannelRefused                a subscription the server refused or revoked
    ├── TokenError                        a token could not be fetched or was refused
    ├── FrameError                        an unreadable inbound frame (reported, never raised)
    ├── ClientClosedError (+ RuntimeError)     the client is closed or closing
    ├── InvalidStateError (+ RuntimeError)     a call that makes no sense now (connect() twice)
    ├── IllegalTransition (+ RuntimeError)     a state change the transition table forbids
    ├── InvalidCloseCode (+ ValueError)        a close code or reason browsers refuse
    ├── MessageTooLarge (+ ValueError)         over the size the server advertised (max_bytes)
    ├── RelativeURLError (+ ValueError)        "/ws" outside a browser: no page to resolve it
    ├── EncodeError (+ TypeError)              data the wire protocol cannot carry
    ├── UnsupportedByProtocol (+ TypeError)    acks or channels in raw mode
    ├── PersistenceError                  a write of ``persist=`` state failed
    │   └── StorageUnavailable            no durable storage here: state lives in memory only
    ├── ShareUnavailable                  ``share=`` cannot work here: the client connects alone
    ├── TransportUnavailable              a transport did not come up here: the client moves on
    └── SSEError                          what the SSE clients report or raise
        ├── SSEHTTPError                  a status other than 200 (``status``, ``retryable``)
        ├── SSEContentTypeError           200 without ``text/event-stream``
        ├── SSENetworkError               no response, or the body broke
        ├── SSEStalledError               no byte for ``stall_timeout`` seconds
        ├── SSEStreamEndedError           the server ended the stream
        └── SSERetriesExhaustedError      ``Backoff.max_attempts`` reached (``__cause__``: the last)

The reference server's own exceptions (``pyrt.server``) never reach a client and live there.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AckError",
    "AckTimeout",
    "ChannelRefused",
    "ClientClosedError",
    "EncodeError",
    "FrameError",
    "IllegalTransition",
    "InvalidCloseCode",
    "InvalidStateError",
    "MessageTooLarge",
    "PersistenceError",
    "PyrtError",
    "QueueFull",
    "RelativeURLError",
    "SSEContentTypeError",
    "SSEError",
    "SSEHTTPError",
    "SSENetworkError",
    "SSERetriesExhaustedError",
    "SSEStalledError",
    "SSEStreamEndedError",
    "ServerError",
    "ShareUnavailable",
    "StorageUnavailable",
    "TokenError",
    "TransportUnavailable",
    "UnsupportedByProtocol",
]


class PyrtError(Exception):
    """Base class of every pyrt exception."""


class AckTimeout(PyrtError, TimeoutError):
    """A message was sent ``attempts`` times and no acknowledgement came back in time."""

    def __init__(self, message_id: str | int, attempts: int, timeout: float) -> None:
        self.message_id = message_id
        self.attempts = attempts
        self.timeout = timeout
        super().__init__(
            f"message {message_id!r} was not acknowledged: sent {attempts} time(s), "
            f"waited {timeout:g} s after each"
        )


class AckError(PyrtError):
    """The server acknowledged a message with a failure (``ok: false``) or refused its frame."""

    def __init__(self, message_id: str | int, error: Any, code: str | None = None) -> None:
        self.message_id = message_id
        self.error = error
        self.code = code
        where = f" ({code})" if code else ""
        super().__init__(f"the server rejected message {message_id!r}{where}: {error}")


class MessageTooLarge(PyrtError, ValueError):
    """A message is larger than the server accepts (its advertised ``max_bytes``); sending it
    would make the server close the connection with 1009."""

    def __init__(self, size: int, limit: int, message_id: str | int | None = None) -> None:
        self.size = size
        self.limit = limit
        self.message_id = message_id
        which = f"message {message_id!r}" if message_id is not None else "a message"
        super().__init__(f"{which} is {size} bytes; the server accepts at most {limit} bytes per frame")


class QueueFull(PyrtError):
    """The outgoing queue is at its limit and the overflow policy refused or dropped a message."""


class ClientClosedError(PyrtError, RuntimeError):
    """The client is closed (or closing): it sends nothing more and will not reconnect."""


class InvalidStateError(PyrtError, RuntimeError):
    """A method was called in a state where it makes no sense (``connect()`` twice, ...)."""


class IllegalTransition(PyrtError, RuntimeError):
    """A state change the transition table forbids; the state is left untouched."""


class InvalidCloseCode(PyrtError, ValueError):
    """Browsers only let a client close with code 1000 or 3000-4999."""


class RelativeURLError(PyrtError, ValueError):
    """A relative URL (``"/ws"``, ``"sse?channel=x"``) reached a client running outside a browser.

    In the browser such a URL resolves against the page; on CPython there is no page, so the
    client needs an absolute URL such as ``"ws://127.0.0.1:8000/ws"``.
    """


class EncodeError(PyrtError, TypeError):
    """The data cannot be put in a frame (not JSON-serialisable, or binary in a JSON protocol)."""


class FrameError(PyrtError):
    """An inbound frame the protocol cannot read; reported through ``on_error``, never raised."""

    def __init__(self, reason: str, frame: str | bytes) -> None:
        self.reason = reason
        self.frame = frame
        more = "..." if len(frame) > 80 else ""
        super().__init__(f"unreadable frame from the server ({reason}): {frame[:80]!r}{more}")


class UnsupportedByProtocol(PyrtError, TypeError):
    """The chosen protocol cannot do this (acks or channels in raw mode)."""


class PersistenceError(PyrtError):
    """Saving a client's ``persist=`` state failed (storage full or forbidden); pyrt retries.

    Reported through ``on_error`` and raised by ``await client.persisted()``.
    """


class StorageUnavailable(PersistenceError):
    """No durable storage exists here (no ``localStorage``, no IndexedDB, or it refused to
    open): ``persist=`` state lives in memory only and does not survive a reload. Reported once
    through ``on_error`` (and the log) when the client connects; ``client.durable`` is False."""


class ShareUnavailable(PyrtError):
    """``share=`` cannot work here (no Web Locks or no ``BroadcastChannel``: an old browser, a
    page that is not a secure context, or CPython): the client connects on its own instead.
    Reported once through ``on_error`` (and the log) when it connects."""


class TransportUnavailable(PyrtError):
    """A transport did not come up here (WebSockets refused, stripped, or opened and then silent),
    and the client tries the next one (``transports=``). Reported through ``on_error``, never
    raised; the message says why."""


class ServerError(PyrtError):
    """The server refused a frame with an ``error`` frame that named no pending message."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"server error {code}: {message}")


class ChannelRefused(ServerError):
    """The server refused a subscription (``forbidden``), or revoked it after a token refresh;
    the client forgot it (it is not made again after a reconnect). ``channel`` names it."""

    def __init__(self, code: str, message: str, channel: str) -> None:
        self.channel = channel
        super().__init__(code, message)


class TokenError(PyrtError):
    """The ``token`` callable failed, returned something unusable, or the server refused the
    refreshed token. Reported through ``on_error``; the client retries, and reconnects with a
    fresh token if the old one expires first."""


class SSEError(PyrtError):
    """Base class of everything the SSE clients report through ``on_error`` or raise."""


class SSEHTTPError(SSEError):
    """The server answered with a status that is not ``200``.

    ``status`` is the HTTP status; ``retryable`` tells whether the client retries (429, 408
    and 5xx) or stopped for good (401, 403, 404, other 4xx, anything else).
    """

    def __init__(self, status: int, retryable: bool) -> None:
        self.status = status
        self.retryable = retryable
        what = "retrying" if retryable else "not retrying"
        super().__init__(f"HTTP {status} from the event stream URL ({what})")


class SSEContentTypeError(SSEError):
    """The server answered ``200`` with a content type other than ``text/event-stream``."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type
        super().__init__(
            f"expected Content-Type text/event-stream, got {content_type or 'none'!r}; not retrying"
        )


class SSENetworkError(SSEError):
    """The request failed or the stream broke (connection refused, reset, DNS, CORS...)."""


class SSEStalledError(SSEError):
    """No byte at all (not even a comment) arrived for ``stall_timeout`` seconds, or for the
    ``seconds`` the machine slept (``asleep``)."""

    def __init__(self, seconds: float, asleep: bool = False) -> None:
        self.seconds = seconds
        self.asleep = asleep
        what = f"the machine slept for {seconds:.0f} s" if asleep else f"no data for {seconds:g} s"
        super().__init__(f"{what}: connection presumed dead, reconnecting")


class SSEStreamEndedError(SSEError):
    """The server ended the response (or the native ``EventSource`` lost its connection)."""


class SSERetriesExhaustedError(SSEError):
    """``Backoff.max_attempts`` consecutive reconnect attempts failed; the client stopped.

    The last failure is ``__cause__`` (and ``last``).
    """

    def __init__(self, attempts: int, last: SSEError) -> None:
        self.attempts = attempts
        self.last = last
        super().__init__(f"gave up after {attempts} failed reconnect attempts: {last}")
        self.__cause__ = last
