"""The pages' Content-Security-Policy: wasm allowed without eval, inline scripts by hash, nothing foreign."""

from __future__ import annotations

import base64
import hashlib

import httpx

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.server.csp import inline_script_hashes, page_policy
from tests import REPO


def _hash(body: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"


def test_only_scripts_the_browser_runs_inline_are_hashed() -> None:
    html = (
        b"<script>one()</script>"
        b'<script type="module">two()</script>'
        b'<script type="py">print("python")</script>'
        b'<script src="/x.js"></script>'
        b'<script type="application/json">{"a": 1}</script>'
    )
    assert inline_script_hashes(html) == [_hash(b"one()"), _hash(b"two()")]


def test_loopback_pages_may_connect_to_any_loopback_port_and_others_only_to_themselves() -> None:
    local = page_policy("127.0.0.1:8000", [], [])
    remote = page_policy("app.example", [], ["https://api.example"])
    assert "ws://127.0.0.1:*" in local
    assert "127.0.0.1" not in remote
    assert "connect-src 'self' https://api.example wss://api.example;" in remote


def test_pages_get_a_policy_with_wasm_but_without_eval(pyrt_server: ServerProcess) -> None:
    response = httpx.get(pyrt_server.url + "/pyodide.html")
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert "'wasm-unsafe-eval'" in directives["script-src"]
    assert "'unsafe-eval'" not in policy
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    for script_hash in inline_script_hashes((REPO / "web" / "pyodide.html").read_bytes()):
        assert script_hash in directives["script-src"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_non_page_responses_get_nosniff_but_no_page_policy(pyrt_server: ServerProcess) -> None:
    response = httpx.get(pyrt_server.url + "/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers
