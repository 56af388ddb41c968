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
    from pyrt.engine.backoff import Backoff
    from pyrt.engine.close_policy import CloseInfo, default_should_reconnect
    from pyrt.engine.heartbeat import Heartbeat
    from pyrt.engine.pacing import Pacing
    from pyrt.engine.sse import SSEStats
    from pyrt.engine.states import ReadyState, State
    from pyrt.engine.transport_choice import TransportPolicy
    from pyrt.engine.websocket import WebSocketEngine
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
        PersistenceError,
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
        StorageUnavailable,
        TransportUnavailable,
        UnsupportedByProtocol,
    )
    from pyrt.persist.records import MemoryRecordStore, MemoryStorage, RestoredMessage
    from pyrt.wire.frames import Publication
    from pyrt.wire.ndarray import NDArray
    from pyrt.wire.protocols import (
        JsonAckProtocol,
        PyrtBinaryProtocol,
        PyrtProtocol,
        RawProtocol,
        WireProtocol,
    )
    from pyrt.wire.sse import ServerSentEvent, SSEDecoder
    from pyrt.wire.sse_encode import encode_comment, encode_event

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
    "MemoryRecordStore",
    "MemoryStorage",
    "MessageTooLarge",
    "NDArray",
    "Pacing",
    "PersistenceError",
    "Publication",
    "PyrtBinaryProtocol",
    "PyrtError",
    "PyrtProtocol",
    "QueueFull",
    "RawProtocol",
    "ReadyState",
    "RelativeURLError",
    "RestoredMessage",
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
    "StorageUnavailable",
    "TransportPolicy",
    "TransportUnavailable",
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
    "Backoff": "pyrt.engine.backoff",
    "ClientClosedError": "pyrt.errors",
    "CloseInfo": "pyrt.engine.close_policy",
    "EncodeError": "pyrt.errors",
    "EventSourceClient": "pyrt.aio.eventsource",
    "FetchEventSource": "pyrt.aio.fetch_event_source",
    "FrameError": "pyrt.errors",
    "Heartbeat": "pyrt.engine.heartbeat",
    "IllegalTransition": "pyrt.errors",
    "InvalidCloseCode": "pyrt.errors",
    "InvalidStateError": "pyrt.errors",
    "JsonAckProtocol": "pyrt.wire.protocols",
    "MemoryRecordStore": "pyrt.persist.records",
    "MemoryStorage": "pyrt.persist.records",
    "MessageTooLarge": "pyrt.errors",
    "NDArray": "pyrt.wire.ndarray",
    "Pacing": "pyrt.engine.pacing",
    "PersistenceError": "pyrt.errors",
    "Publication": "pyrt.wire.frames",
    "PyrtBinaryProtocol": "pyrt.wire.protocols",
    "PyrtError": "pyrt.errors",
    "PyrtProtocol": "pyrt.wire.protocols",
    "QueueFull": "pyrt.errors",
    "RawProtocol": "pyrt.wire.protocols",
    "ReadyState": "pyrt.engine.states",
    "RelativeURLError": "pyrt.errors",
    "RestoredMessage": "pyrt.persist.records",
    "SSEContentTypeError": "pyrt.errors",
    "SSEDecoder": "pyrt.wire.sse",
    "SSEError": "pyrt.errors",
    "SSEHTTPError": "pyrt.errors",
    "SSENetworkError": "pyrt.errors",
    "SSERetriesExhaustedError": "pyrt.errors",
    "SSEStalledError": "pyrt.errors",
    "SSEStats": "pyrt.engine.sse",
    "SSEStreamEndedError": "pyrt.errors",
    "ServerError": "pyrt.errors",
    "ServerSentEvent": "pyrt.wire.sse",
    "State": "pyrt.engine.states",
    "StorageUnavailable": "pyrt.errors",
    "TransportPolicy": "pyrt.engine.transport_choice",
    "TransportUnavailable": "pyrt.errors",
    "UnsupportedByProtocol": "pyrt.errors",
    "WebSocketClient": "pyrt.aio.websocket",
    "WebSocketEngine": "pyrt.engine.websocket",
    "WireProtocol": "pyrt.wire.protocols",
    "default_should_reconnect": "pyrt.engine.close_policy",
    "encode_comment": "pyrt.wire.sse_encode",
    "encode_event": "pyrt.wire.sse_encode",
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
