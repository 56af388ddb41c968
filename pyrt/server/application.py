"""The application's part: what happens to ``message`` frames. Pluggable through ``create_app(handler=...)``.

A handler is ``async def handler(message: IncomingMessage) -> result``. For an acked message
(``message.id`` set) the server runs it once per id and sends ``result`` in the ack
(``{"type":"ack","id":ID,"ok":true,"data":result}``); raising :class:`HandlerError` acks with
``ok: false`` and the error's text; any other exception acks ``"internal error"`` (and is logged),
and is not remembered, so the client's retry runs the handler again. For a fire-and-forget
message the result is ignored. ``message.reply(data)`` sends ``{"type":"message","data":data}``
to the client that sent the message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Handler", "HandlerError", "IncomingMessage", "echo_handler"]


class HandlerError(Exception):
    """Raise it from a handler to refuse a message; its text goes to the client in the ack."""


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One ``message`` frame as the application sees it."""

    #: The frame's ``data`` (any JSON value; ``None`` when absent).
    data: Any
    #: The message id for acked messages, ``None`` for fire-and-forget ones.
    id: str | None
    #: The connection's session (as sent in ``welcome``).
    session: str
    #: The ``cid`` query parameter the client connected with, if any (stable across reconnects).
    cid: str | None
    #: The token's subject when authentication is on.
    subject: str | None
    #: Send ``{"type":"message","data":data}`` to this client. Returns ``False`` if it is gone.
    reply: Callable[[Any], bool]
    #: The client's network address (after trusted proxies).
    address: str = ""


Handler = Callable[[IncomingMessage], Awaitable[Any]]


async def echo_handler(message: IncomingMessage) -> Any:
    """The default application: acks carry the data back; fire-and-forget messages are echoed."""
    if message.id is None:
        message.reply(message.data)
    return message.data
