"""pyrt: resilient real-time connections for Python in the browser (and on CPython).

``WebSocketClient``, ``EventSourceClient`` and ``FetchEventSource`` wrap the browser's own
``WebSocket``, ``EventSource`` and ``fetch`` when running in Pyodide, and the ``websockets`` and
``httpx`` libraries on CPython (``pip install "pyrt[cpython]"``; see :mod:`pyrt.cpython`); the
decision code they drive (backoff, heartbeats, queues, acks, recovery, the SSE parser) is pure
Python, the same on both.

Importing ``pyrt`` is cheap: each public name is loaded from its module on first use (PEP 562),
so a page that only needs ``WebSocketClient`` never compiles the SSE code, and vice versa.
"""

import typing as _typing

if _typing.TYPE_CHECKING:
    from pyrt.aio.eventsource import EventSourceClient
    from pyrt.aio.fetch_event_source import FetchEventSource
    from pyrt.aio.websocket import WebSocketClient
    from pyrt.backoff import Backoff
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
        MessageTooLarge,
        PyrtError,
        QueueFull,
        RelativeURLError,
        ServerError,
        SSEContentTypeError,
        SSEError,
        SSEHTTPError,
        SSENetworkError,
        SSERetriesExhaustedError,
        SSEStalledError,
        SSEStreamEndedError,
        UnsupportedByProtocol,
    )
    from pyrt.heartbeat import Heartbeat
    from pyrt.pacing import Pacing
    from pyrt.persist import MemoryStorage
    from pyrt.protocol import JsonAckProtocol, PyrtProtocol, RawProtocol, WireProtocol
    from pyrt.sse import ServerSentEvent, SSEDecoder
    from pyrt.sse_encode import encode_comment, encode_event
    from pyrt.sse_policy import SSEStats
    from pyrt.states import ReadyState, State
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
    "MessageTooLarge",
    "Pacing",
    "Publication",
    "PyrtError",
    "PyrtProtocol",
    "QueueFull",
    "RawProtocol",
    "ReadyState",
    "RelativeURLError",
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

_WHERE: dict[str, str] = {
    "AckError": "pyrt.errors",
    "AckTimeout": "pyrt.errors",
    "Backoff": "pyrt.backoff",
    "ClientClosedError": "pyrt.errors",
    "CloseInfo": "pyrt.close_policy",
    "EncodeError": "pyrt.errors",
    "EventSourceClient": "pyrt.aio.eventsource",
    "FetchEventSource": "pyrt.aio.fetch_event_source",
    "FrameError": "pyrt.errors",
    "Heartbeat": "pyrt.heartbeat",
    "IllegalTransition": "pyrt.errors",
    "InvalidCloseCode": "pyrt.errors",
    "InvalidStateError": "pyrt.errors",
    "JsonAckProtocol": "pyrt.protocol",
    "MemoryStorage": "pyrt.persist",
    "MessageTooLarge": "pyrt.errors",
    "Pacing": "pyrt.pacing",
    "Publication": "pyrt.subscriptions",
    "PyrtError": "pyrt.errors",
    "PyrtProtocol": "pyrt.protocol",
    "QueueFull": "pyrt.errors",
    "RawProtocol": "pyrt.protocol",
    "ReadyState": "pyrt.states",
    "RelativeURLError": "pyrt.errors",
    "SSEContentTypeError": "pyrt.errors",
    "SSEDecoder": "pyrt.sse",
    "SSEError": "pyrt.errors",
    "SSEHTTPError": "pyrt.errors",
    "SSENetworkError": "pyrt.errors",
    "SSERetriesExhaustedError": "pyrt.errors",
    "SSEStalledError": "pyrt.errors",
    "SSEStats": "pyrt.sse_policy",
    "SSEStreamEndedError": "pyrt.errors",
    "ServerError": "pyrt.errors",
    "ServerSentEvent": "pyrt.sse",
    "State": "pyrt.states",
    "UnsupportedByProtocol": "pyrt.errors",
    "WebSocketClient": "pyrt.aio.websocket",
    "WebSocketEngine": "pyrt.ws_engine",
    "WireProtocol": "pyrt.protocol",
    "default_should_reconnect": "pyrt.close_policy",
    "encode_comment": "pyrt.sse_encode",
    "encode_event": "pyrt.sse_encode",
}


def __getattr__(name: str) -> _typing.Any:
    """Load a public name from its module on first access, then keep it as a module global."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pyrt' has no attribute {name!r}")
    from importlib import import_module as _import

    value = getattr(_import(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
