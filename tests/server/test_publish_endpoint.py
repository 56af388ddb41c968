"""POST /publish: offsets, dedup by id, validation, size limit, server-only channels."""

from __future__ import annotations

import uuid

import httpx

from pyrt.pytest_plugin.server_process import ServerProcess


def test_publish_answers_the_offset_and_a_resent_id_is_a_duplicate(pyrt_server: ServerProcess) -> None:
    channel = f"p-{uuid.uuid4().hex[:8]}"
    body = {"channel": channel, "data": {"x": 1}, "id": f"{channel}-1"}
    first = httpx.post(pyrt_server.url + "/publish", json=body).json()
    again = httpx.post(pyrt_server.url + "/publish", json=body).json()
    other = httpx.post(pyrt_server.url + "/publish", json={"channel": channel, "data": 2}).json()
    assert first["duplicate"] is False
    assert again == {"offset": first["offset"], "duplicate": True}
    major, minor = (int(part) for part in other["offset"].split("-"))
    assert (major, minor) > tuple(int(part) for part in first["offset"].split("-"))


def test_bad_bodies_are_refused_with_400(pyrt_server: ServerProcess) -> None:
    for content in (
        b"{nope",
        b"[1]",
        b'{"data": 1}',
        b'{"channel": "c", "event": "a b"}',
        b'{"channel": "c", "id": 5}',
    ):
        response = httpx.post(
            pyrt_server.url + "/publish", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, content
        assert response.json()["error"]


def test_a_body_over_the_size_limit_is_refused_with_413(pyrt_server: ServerProcess) -> None:
    too_big = {"channel": "c", "data": "x" * (1024 * 1024 + 1)}
    response = httpx.post(pyrt_server.url + "/publish", json=too_big)
    assert response.status_code == 413


def test_server_channels_and_foreign_origins_are_refused_with_403(pyrt_server: ServerProcess) -> None:
    assert httpx.post(pyrt_server.url + "/publish", json={"channel": "_x", "data": 1}).status_code == 403
    response = httpx.post(
        pyrt_server.url + "/publish",
        json={"channel": "c", "data": 1},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
