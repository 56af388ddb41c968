"""A client's transports remember their choice per origin; the origin comes from the URL the way
``urllib.parse.urlsplit`` reads it, without importing it for plain URLs."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyrt.aio.transports import origin
from tests import REPO


def expected(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.netloc:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


@pytest.mark.parametrize(
    ("url", "place"),
    [
        ("ws://127.0.0.1:8000/ws", "http://127.0.0.1:8000"),
        ("WSS://Example.com/ws?token=x#y", "https://Example.com"),
        ("https://user:pw@example.com:443", "https://user:pw@example.com:443"),
        ("http://example.com?x=1", "http://example.com"),
        ("/ws", None),
        ("ws", None),
        ("localhost:8000/ws", None),
        ("//example.com/ws", "://example.com"),
        ("ws://[::1]:8000/ws", "http://[::1]:8000"),
        (" ws://example.com/ws", "http://example.com"),
        ("ws://exa\tmple.com/ws", "http://example.com"),
    ],
)
def test_the_origin_of_a_url_is_its_scheme_and_host(url: str, place: str | None) -> None:
    assert origin(url) == place == expected(url)


URL_ALPHABET = st.sampled_from([*"abcWS09+-.:/?#@[]% \t\\é", "ws", "wss", "http", "://", "//"])


@given(st.lists(URL_ALPHABET, max_size=12).map("".join))
def test_every_url_has_the_origin_urlsplit_gives_it(url: str) -> None:
    try:
        place = expected(url)
    except ValueError:  # urlsplit refuses it (a bad IPv6 bracket): so does origin
        with pytest.raises(ValueError, match="IPv6"):
            origin(url)
        return
    assert origin(url) == place


def test_a_websocket_client_does_not_import_urllib() -> None:
    """``urllib.parse`` (and ``ipaddress``, which it imports) cost a page tens of milliseconds."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import pyrt; pyrt.WebSocketClient('ws://h/ws'); "
        "print(sorted({'urllib.parse', 'ipaddress'} & set(sys.modules)))"
    )
    done = subprocess.run(  # -S: no site, whose imports would hide the client's
        [sys.executable, "-S", "-c", code, str(REPO)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
