"""Helpers for the CPython-adapter scenarios: run a coroutine, wait on conditions, demo controls."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from pyrt.pytest_plugin.server_process import ServerProcess
from pyrt.testing.waiting import until  # noqa: F401  (re-exported for the server tests)


def run(scenario: Callable[[], Coroutine[Any, Any, None]], timeout: float = 60.0) -> None:
    """Run an async scenario in a fresh event loop, failing after ``timeout`` seconds."""
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def new_cid() -> str:
    return "c" + uuid.uuid4().hex[:12]


class Controls:
    """The server's demo controls and ``/publish``, called without blocking the event loop.

    Use as ``async with Controls(server) as ctl:``.
    """

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.AsyncClient(timeout=10)

    async def __aenter__(self) -> Controls:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def drop(self, cid: str) -> int:
        """Abort the connections opened with ``?cid=`` (no close frame: the client sees 1006)."""
        answer = await self.http.post(f"{self.server.url}/demo/drop", json={"cid": cid})
        answer.raise_for_status()
        return int(answer.json()["dropped"])

    async def stall(self, cid: str, seconds: float) -> int:
        answer = await self.http.post(f"{self.server.url}/demo/stall", json={"cid": cid, "seconds": seconds})
        answer.raise_for_status()
        return int(answer.json()["stalled"])

    async def publish(self, channel: str, data: Any, event: str | None = None) -> str:
        body: dict[str, Any] = {"channel": channel, "data": data}
        if event is not None:
            body["event"] = event
        answer = await self.http.post(f"{self.server.url}/publish", json=body)
        answer.raise_for_status()
        return str(answer.json()["offset"])

    async def received(self, cid: str) -> list[Any]:
        """What the application handled for ``cid``, in order, once per id."""
        answer = await self.http.get(f"{self.server.url}/demo/received", params={"cid": cid})
        answer.raise_for_status()
        return [m["data"] for m in answer.json()["messages"]]
