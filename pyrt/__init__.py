"""pyrt: resilient real-time connections for Python in the browser (and on CPython).

``WebSocketClient``, ``EventSourceClient`` and ``FetchEventSource`` wrap the browser's own
``WebSocket``, ``EventSource`` and ``fetch`` when running in Pyodide, and the ``websockets`` and
``httpx`` libraries on CPython (``pip install "pyrt[cpython]"``; see :mod:`pyrt.cpython`); the
decision code they drive (backoff, heartbeats, queues, acks, recovery, the SSE parser) is pure
Python, the same on both.
"""

from pyrt.backoff import Backoff
from pyrt.browser.eventsource import EventSourceClient
from pyrt.browser.fetch_event_source import FetchEventSource
from pyrt.browser.websocket import WebSocketClient
from pyrt.close_policy import CloseInfo, default_should_reconnect
from pyrt.errors import (
    AckError,
    AckTimeout,
    ClientClosedError,
    EncodeError,
    FrameError,
    IllegalTransition,
    InvalidCloseCode,
    InvalidStateError,
    PyrtError,
    QueueFull,
    ServerError,
    UnsupportedByProtocol,
)
from pyrt.heartbeat import Heartbeat
from pyrt.persist import MemoryStorage
from pyrt.protocol import JsonAckProtocol, PyrtProtocol, RawProtocol, WireProtocol
from pyrt.sse import ServerSentEvent, SSEDecoder
from pyrt.sse_encode import encode_comment, encode_event
from pyrt.sse_policy import (
    SSEContentTypeError,
    SSEError,
    SSEHTTPError,
    SSENetworkError,
    SSERetriesExhaustedError,
    SSEStalledError,
    SSEStats,
    SSEStreamEndedError,
)
from pyrt.states import State
from pyrt.subscriptions import Publication
from pyrt.ws_engine import WebSocketEngine

__all__ = [
    "AckError",
    "AckTimeout",
    "Backoff",
    "ClientClosedError",
    "CloseInfo",
    "EncodeError",
    "EventSourceClient",
    "FetchEventSource",
    "FrameError",
    "Heartbeat",
    "IllegalTransition",
    "InvalidCloseCode",
    "InvalidStateError",
    "JsonAckProtocol",
    "MemoryStorage",
    "Publication",
    "PyrtError",
    "PyrtProtocol",
    "QueueFull",
    "RawProtocol",
    "SSEContentTypeError",
    "SSEDecoder",
    "SSEError",
    "SSEHTTPError",
    "SSENetworkError",
    "SSERetriesExhaustedError",
    "SSEStalledError",
    "SSEStats",
    "SSEStreamEndedError",
    "ServerError",
    "ServerSentEvent",
    "State",
    "UnsupportedByProtocol",
    "WebSocketClient",
    "WebSocketEngine",
    "WireProtocol",
    "default_should_reconnect",
    "encode_comment",
    "encode_event",
]
__version__ = "0.1.0"
