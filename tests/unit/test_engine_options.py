"""The options of a WebSocket client, declared once: WebSocketOptions, taken whole or by keyword."""

from __future__ import annotations

from dataclasses import fields

import pytest

from pyrt.aio.websocket import WebSocketClient
from pyrt.engine.backoff import Backoff
from pyrt.engine.heartbeat import Heartbeat
from pyrt.engine.options import WebSocketOptions
from pyrt.engine.pacing import Pacing
from pyrt.engine.websocket import WebSocketEngine
from pyrt.testing import FakeTransport


def test_every_option_has_a_default_and_a_keyword_of_the_client_and_the_engine() -> None:
    defaults = WebSocketOptions()
    for field in fields(WebSocketOptions):
        value = getattr(defaults, field.name)
        client = WebSocketClient("ws://x/ws", transport=FakeTransport(), **{field.name: value})
        engine = WebSocketEngine(**{field.name: value})
        assert getattr(client.options, field.name) == value
        assert getattr(engine.options, field.name) == value


def test_keywords_reach_the_engine() -> None:
    backoff = Backoff(initial=1.0)
    client = WebSocketClient("ws://x/ws", backoff=backoff, heartbeat=None, ack_timeout=3.0, protocol="raw")
    engine = client._engine
    assert engine.options.backoff is backoff
    assert engine.options.heartbeat is None
    assert engine.ack_timeout == 3.0
    assert client.protocol_name == "raw"


def test_an_options_object_is_taken_whole_and_keywords_change_it() -> None:
    options = WebSocketOptions(queue_limit=10, pacing=Pacing(rate=5.0))
    client = WebSocketClient("ws://x/ws", options=options)
    assert client.options is options
    changed = WebSocketClient("ws://x/ws", options=options, queue_limit=20)
    assert (changed.options.queue_limit, changed.options.pacing) == (20, Pacing(rate=5.0))
    assert options.queue_limit == 10  # frozen: never changed in place


def test_an_unknown_option_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(
        TypeError, match="unknown option 'queue_size'; the options are ack_retries, ack_timeout"
    ):
        WebSocketClient("ws://x/ws", queue_size=10)
    with pytest.raises(TypeError, match="unknown option 'hearbeat'"):
        WebSocketEngine(hearbeat=None)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"ack_timeout": 0}, ValueError, "ack_timeout must be > 0, got 0"),
        ({"connect_timeout": -1.0}, ValueError, "connect_timeout must be > 0, got -1.0"),
        ({"pacing": "fast"}, TypeError, "pacing must be a Pacing, None or 'auto', got 'fast'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_option(
    changes: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        WebSocketOptions.of(**changes)  # type: ignore[arg-type]


def test_the_heartbeat_default_is_shared_safely() -> None:
    assert WebSocketOptions().heartbeat == Heartbeat()
    assert WebSocketOptions().heartbeat is WebSocketOptions().heartbeat
