"""POSTs of the HTTP binding that reach another instance than their stream (docs/server.md).

With several instances on one broker (``--workers N``, or machines on one Redis), the kernel or a
load balancer may send a connection's ``POST /ws?key=K`` to another instance than the one that
holds its stream. :class:`PostRelay` hands it over through the broker, so no sticky sessions are
needed:

- the instance that holds a connection listens for its key (:meth:`PostRelay.hold`, until
  :meth:`PostRelay.release`);
- an instance that gets a POST for a key it does not hold checks what it can (Origin, the body's
  size, the token, which gives the subject) and forwards it (:meth:`PostRelay.forward`): the
  holder applies it as a local POST (the ``seq`` rules, the subject check) and answers with the
  status, which the forwarding instance returns. Nobody listening: ``404``; no answer within
  :data:`FORWARD_TIMEOUT`: ``504`` (the client reconnects and sends again; the server applies
  each message id once).

:class:`RedisPostRelay` does it with Redis pub/sub: the holder subscribes to ``<prefix>http:<key>``,
a forward is a ``PUBLISH`` there (whose count of receivers says whether anyone holds the key),
and the answer comes back on ``<prefix>http-reply:<instance>``. The memory broker has one process:
it needs no relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

__all__ = ["FORWARD_TIMEOUT", "MAX_FORWARDS", "Apply", "PostRelay", "RedisPostRelay"]

log = logging.getLogger("pyrt.server")

FORWARD_TIMEOUT: Final = 30.0  # seconds a forwarded POST waits for the holder's answer
MAX_FORWARDS: Final = 1000  # forwarded POSTs waiting for an answer at once, per instance

#: Apply a POST held here: ``(key, seq, text, close, subject)`` -> its status (``404``: not held).
Apply = Callable[[str, int, str, int | None, str | None], Awaitable[int]]


class PostRelay(Protocol):
    """See the module docstring."""

    async def start(self, apply: Apply) -> None:
        """Begin answering forwarded POSTs with ``apply``."""

    async def stop(self) -> None: ...

    async def hold(self, key: str) -> None:
        """This instance holds the connection of ``key``: forward its POSTs here."""

    async def release(self, key: str) -> None: ...

    async def forward(self, key: str, seq: int, text: str, close: int | None, subject: str | None) -> int:
        """Hand a POST to the instance that holds ``key``; its status."""


class RedisPostRelay:
    """:class:`PostRelay` over Redis pub/sub (see the module docstring)."""

    def __init__(self, client: Any, prefix: str, instance: str) -> None:
        self.client = client  # a redis.asyncio client (decode_responses=True)
        self.prefix = prefix
        self.instance = instance
        self._reply_channel = f"{prefix}http-reply:{instance}"
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._apply: Apply | None = None
        self._waiting: dict[str, asyncio.Future[int]] = {}
        self._applying: set[asyncio.Task[None]] = set()

    def _channel(self, key: str) -> str:
        return f"{self.prefix}http:{key}"

    async def start(self, apply: Apply) -> None:
        self._apply = apply
        self._pubsub = self.client.pubsub()
        await self._pubsub.subscribe(self._reply_channel)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        """Stop, answer what waits with ``503``, and close the client (the relay owns it)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        for task in list(self._applying):
            task.cancel()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_result(503)
        self._waiting.clear()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            await self.client.aclose()

    async def hold(self, key: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.subscribe(self._channel(key))

    async def release(self, key: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(self._channel(key))

    async def forward(self, key: str, seq: int, text: str, close: int | None, subject: str | None) -> int:
        if len(self._waiting) >= MAX_FORWARDS:
            return 503
        request = secrets.token_hex(8)
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[request] = answer
        message = {"r": request, "i": self.instance, "s": seq, "c": close, "u": subject, "b": text}
        try:
            receivers = await self.client.publish(self._channel(key), json.dumps(message, ensure_ascii=False))
            if not receivers:
                return 404
            return await asyncio.wait_for(answer, FORWARD_TIMEOUT)
        except TimeoutError:
            return 504
        finally:
            self._waiting.pop(request, None)

    # -- reading

    async def _read(self) -> None:
        pubsub = self._pubsub
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: redis-py reconnects and resubscribes
                log.warning("HTTP binding relay: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel, data = message.get("channel"), message.get("data")
            if not isinstance(data, str):
                continue
            if channel == self._reply_channel:
                self._answered(data)
            elif isinstance(channel, str) and channel.startswith(f"{self.prefix}http:"):
                task = asyncio.get_running_loop().create_task(self._forwarded(channel, data))
                self._applying.add(task)
                task.add_done_callback(self._applying.discard)

    def _answered(self, data: str) -> None:
        try:
            answer = json.loads(data)
            waiting = self._waiting.get(answer["r"])
            status = int(answer["s"])
        except (ValueError, KeyError, TypeError):
            return
        if waiting is not None and not waiting.done():
            waiting.set_result(status)

    async def _forwarded(self, channel: str, data: str) -> None:
        key = channel[len(f"{self.prefix}http:") :]
        try:
            post = json.loads(data)
            request, reply_to, seq = str(post["r"]), str(post["i"]), int(post["s"])
            close = post["c"] if isinstance(post["c"], int) else None
            subject = post["u"] if isinstance(post["u"], str) else None
            text = str(post["b"])
        except (ValueError, KeyError, TypeError):
            return
        apply = self._apply
        status = await apply(key, seq, text, close, subject) if apply is not None else 404
        reply = json.dumps({"r": request, "s": status})
        with contextlib.suppress(Exception):
            await self.client.publish(f"{self.prefix}http-reply:{reply_to}", reply)
