"""URLs outside the browser: absolute ones pass (http becomes ws), relative ones name the fix."""

from __future__ import annotations

import re

import pytest

from pyrt.engine.urls import http_url, websocket_url
from pyrt.errors import RelativeURLError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:8000/ws", "ws://127.0.0.1:8000/ws"),
        ("wss://example.org/ws?cid=1", "wss://example.org/ws?cid=1"),
        ("http://127.0.0.1:8000/ws", "ws://127.0.0.1:8000/ws"),
        ("https://example.org/ws", "wss://example.org/ws"),
        ("HTTPS://example.org/ws", "wss://example.org/ws"),
    ],
)
def test_websocket_urls_become_ws_urls_as_in_the_browser(given: str, expected: str) -> None:
    assert websocket_url(given) == expected


@pytest.mark.parametrize("relative", ["/ws", "ws", "/ws?cid=a", "//host/ws"])
def test_a_relative_websocket_url_names_an_absolute_one_to_use(relative: str) -> None:
    with pytest.raises(RelativeURLError, match=re.escape("ws://127.0.0.1:8000/")) as info:
        websocket_url(relative)
    assert "outside a browser" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_event_stream_urls_must_be_absolute_http() -> None:
    assert http_url("http://127.0.0.1:8000/sse?channel=a") == "http://127.0.0.1:8000/sse?channel=a"
    assert http_url("https://example.org/sse") == "https://example.org/sse"
    with pytest.raises(RelativeURLError, match=re.escape("'http://127.0.0.1:8000/sse?channel=a'")):
        http_url("/sse?channel=a")
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        http_url("ws://127.0.0.1:8000/sse")


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="must start with ws://, wss://, http:// or https://"):
        websocket_url("ftp://example.org/ws")
