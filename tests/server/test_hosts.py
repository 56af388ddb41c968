"""The Host allow-list (DNS rebinding): IPs and localhost always, listed names, domains, '*'."""

from __future__ import annotations

import pytest

from pyrt.server.hosts import host_allowed, hostname


@pytest.mark.parametrize(
    ("host", "name"),
    [("Example.COM:8000", "example.com"), ("[::1]:80", "::1"), ("127.0.0.1", "127.0.0.1"), ("a.b", "a.b")],
)
def test_the_name_is_the_host_without_port_or_brackets(host: str, name: str) -> None:
    assert hostname(host) == name


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("127.0.0.1:8000", [], True),
        ("[::1]:8000", [], True),
        ("10.1.2.3", [], True),
        ("localhost:8000", [], True),
        ("app.localhost", [], True),
        (None, [], True),
        ("evil.example:8000", [], False),
        ("localhost.evil.example", [], False),
        ("app.example.com", ["app.example.com"], True),
        ("APP.example.com.", ["app.example.com"], True),
        ("rt.app.example.com", ["app.example.com"], False),
        ("rt.app.example.com", [".app.example.com"], True),
        ("app.example.com", [".app.example.com"], True),
        ("evilapp.example.com", [".app.example.com"], False),
        ("anything.example", ["*"], True),
        ("", [], False),
    ],
)
def test_hosts(host: str | None, allowed: list[str], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected
