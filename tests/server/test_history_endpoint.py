"""``GET /history`` against a real ``serve.py``: pages, bad queries, tokens and caps, CORS."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.auth import make_token
from tests.server.wsclient import publish_http, run

SECRET = "history-secret"


def test_pages_of_a_channel_over_http(pyrt_server: ServerProcess) -> None:
    channel = f"h-{uuid.uuid4().hex[:8]}"
    offsets = [run(publish_http(pyrt_server.url, channel, {"n": n}, event="chat")) for n in range(5)]
    url = pyrt_server.url + "/history"
    first = httpx.get(url, params={"channel": channel, "limit": "2"})
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {
        "publications": [
            {"offset": offsets[0], "event": "chat", "data": {"n": 0}},
            {"offset": offsets[1], "event": "chat", "data": {"n": 1}},
        ],
        "offset": offsets[-1],
        "recovered": True,
        "more": True,
    }
    rest = httpx.get(url, params={"channel": channel, "since": offsets[1]}).json()
    assert [p["data"]["n"] for p in rest["publications"]] == [2, 3, 4]
    newest = httpx.get(url, params={"channel": channel, "reverse": "true", "limit": "3"}).json()
    assert [p["data"]["n"] for p in newest["publications"]] == [4, 3, 2]
    assert newest["more"] is True


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"channel": "no spaces"},
        {"channel": "c", "limit": "0"},
        {"channel": "c", "limit": "lots"},
        {"channel": "c", "limit": "99999999999999999999"},
        {"channel": "c", "since": "yesterday"},
        {"channel": "c", "reverse": "maybe"},
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(pyrt_server: ServerProcess, params: dict[str, str]) -> None:
    answer = httpx.get(pyrt_server.url + "/history", params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]


def test_history_needs_a_token_allowed_to_subscribe(pyrt_start_server: Callable[..., ServerProcess]) -> None:
    secured = pyrt_start_server(env={"PYRT_TOKEN_SECRET": SECRET})
    url = secured.url + "/history"
    token = make_token(SECRET, "alice", caps=[{"channels": ["open"], "allow": ["subscribe"]}])
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, params={"channel": "open"}).status_code == 403
    assert httpx.get(url, params={"channel": "open"}, headers=auth).status_code == 200
    refused = httpx.get(url, params={"channel": "closed"}, headers=auth)
    assert refused.status_code == 403
    assert "closed" in refused.json()["error"]
    assert httpx.get(url, params={"channel": "open", "token": token}).status_code == 403  # never from URLs


def test_cross_origin_reads_get_cors_from_allowed_origins_only(
    pyrt_start_server: Callable[..., ServerProcess],
) -> None:
    proc = pyrt_start_server("--allowed-origin", "https://app.example")
    url = proc.url + "/history"
    preflight = httpx.options(
        url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "GET"
    answer = httpx.get(url, params={"channel": "c"}, headers={"Origin": "https://app.example"})
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    assert (
        httpx.get(url, params={"channel": "c"}, headers={"Origin": "https://evil.example"}).status_code == 403
    )
