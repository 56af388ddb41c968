"""The default application echoes: acks carry the data back, fire-and-forget messages are replied to."""

from __future__ import annotations

import asyncio
from typing import Any

from pyrt.server.application import IncomingMessage, echo_handler


def message(id: str | None, data: Any, replies: list[Any]) -> IncomingMessage:
    return IncomingMessage(
        data=data, id=id, session="s", cid=None, subject=None, reply=lambda d: bool(replies.append(d)) or True
    )


def test_acked_messages_return_their_data_and_reply_nothing() -> None:
    replies: list[Any] = []
    assert asyncio.run(echo_handler(message("1", {"a": 1}, replies))) == {"a": 1}
    assert replies == []


def test_fire_and_forget_messages_are_echoed_back() -> None:
    replies: list[Any] = []
    asyncio.run(echo_handler(message(None, "ping me", replies)))
    assert replies == ["ping me"]
