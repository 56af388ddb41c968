"""A small pyrt protocol client for tests, on the ``websockets`` library (asyncio)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

T = TypeVar("T")

TIMEOUT = 5.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test coroutine to the end."""
    return asyncio.run(coro)


class Client:
    """One ``/ws`` connection. :meth:`expect` waits for the next frame of a type, keeping others."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any], lines: list[str] | None = None) -> None:
        self.ws = ws
        self.welcome = welcome
        self.session: str = welcome["session"]
        self.frames: list[dict[str, Any]] = []  # received but not yet expected
        self.lines: list[str] = lines or []  # frames of a batch (pyrt.v1.batch) not yet read
        #: WebSocket messages received, and how many held more than one frame.
        self.messages = 1
        self.batches = 1 if lines else 0

    @classmethod
    async def connect(cls, base_ws_url: str, query: str = "", **kwargs: Any) -> Client:
        kwargs.setdefault("subprotocols", ["pyrt.v1"])
        kwargs.setdefault("max_queue", None)  # a test that reads late must still see the close frame
        ws = await websockets.connect(f"{base_ws_url}/ws{query}", open_timeout=TIMEOUT, **kwargs)
        first, *rest = str(await asyncio.wait_for(ws.recv(), TIMEOUT)).split("\n")
        welcome = json.loads(first)
        assert welcome["type"] == "welcome", welcome
        return cls(ws, welcome, rest)

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next frame; the frames of a batched message (``pyrt.v1.batch``) one by one."""
        if not self.lines:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            self.messages += 1
            if isinstance(message, str) and "\n" in message:
                self.batches += 1
                self.lines = message.split("\n")
            else:
                self.lines = [message]  # type: ignore[list-item]
        frame: dict[str, Any] = json.loads(self.lines.pop(0))
        return frame

    async def expect(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first frame of type ``kind`` (matching ``fields``), received or already buffered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for frame in self.frames:
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items()):
                    self.frames.remove(frame)
                    return frame
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {kind!r} frame {fields} within {timeout}s; got {self.frames}")
            self.frames.append(await self.recv(left))

    async def publications(self, channel: str, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        return [await self.expect("publication", timeout, channel=channel) for _ in range(count)]

    async def close_code(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes; the close code it sent (``None``: no close frame, 1006)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.ws.close()


async def publish_http(
    base_url: str, channel: str, data: Any, headers: dict[str, str] | None = None, **extra: Any
) -> str:
    async with httpx.AsyncClient() as client:
        body = {"channel": channel, "data": data, **extra}
        response = await client.post(f"{base_url}/publish", json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["offset"])


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = TIMEOUT) -> T:
    """Await ``check()`` until it returns something truthy (polling), or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(0.02)
