"""The messages the participants of a share group exchange over their channel, as text.

Every message names its sender (``f``) and, for the traffic of a link, the participant it is
for (``to``) and the link (``l``). The group's own messages are JSON objects:

====================  ============================================================================
``hello``             a participant joined: the leader answers with ``leader``
``leader`` (``e``)    I lead now (``e``: when I started leading, for tie-breaks)
``bye``               the leader stops leading (its client closed, its page went away)
``ready`` (``v``)     the leader's real connection is open (again), over ``v``: reconnect now
``open`` (``x``)      a client opens a link to the leader (``x``: what its stream needs)
``close`` (``c r``)   the link is closed (either side), with a close code and reason
``tabs`` (``n v``)    how many participants use the shared connection, and what it runs over
====================  ============================================================================

What travels on a link (a :data:`~pyrt.share.relay.LinkItem`: a WebSocket frame, a stream event,
a keep-alive, a stream's event types) goes as a *link message*: a few header lines, then the
item as it is, so a frame is never escaped into, nor parsed out of, a JSON string::

    \\x1e<kind><item>\\n<from>\\n<to>\\n<link>\\n<payload>

``kind`` is ``i`` (an item on the link) or ``o`` (the link opened, with its first item or
``-`` for none); ``item`` is ``d`` (a text frame: the payload is the frame), ``b`` (a binary
frame, in base64), ``e`` (an event: its type, its id and its data, one per line, the data
last), ``k`` (a keep-alive) or ``y`` (event types, one per line). No header field can hold a
line break (participant and link ids are ours; an event's type and id cannot).

Inside one participant (the leader's own link) the same messages pass as dicts, never as text:
:func:`decode` gives ``{"t": "item" | "opened", "f", "to", "l", "i": item}`` for a link message.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pyrt.share.relay import KEEP_ALIVE, EventTypes, KeepAlive, LinkItem
from pyrt.wire.sse import ServerSentEvent

__all__ = ["decode", "encode", "encode_link"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MARK = "\x1e"
_KINDS = {"i": "item", "o": "opened"}
_LETTERS = {kind: letter for letter, kind in _KINDS.items()}


def encode(kind: str, sender: str, **fields: Any) -> str:
    """One of the group's own messages, of ``kind`` from ``sender``, as text."""
    return _encode({"t": kind, "f": sender, **fields})


def encode_link(kind: str, sender: str, to: str, link: str, item: LinkItem | None) -> str:
    """A link message (``kind``: ``"item"`` or ``"opened"``) carrying ``item`` as it is."""
    head = f"{_MARK}{_LETTERS[kind]}"
    if isinstance(item, str):
        letter, payload = "d", item
    elif isinstance(item, bytes):
        letter, payload = "b", base64.b64encode(item).decode("ascii")
    elif isinstance(item, ServerSentEvent):
        letter, payload = "e", f"{item.type}\n{item.id}\n{item.data}"
    elif isinstance(item, KeepAlive):
        letter, payload = "k", ""
    elif isinstance(item, EventTypes):
        letter, payload = "y", "\n".join(item.types)
    else:
        letter, payload = "-", ""
    return f"{head}{letter}\n{sender}\n{to}\n{link}\n{payload}"


def decode(text: Any) -> dict[str, Any] | None:
    """A message back; ``None`` for anything that is not one (another library's traffic)."""
    if not isinstance(text, str):
        return None
    if text.startswith(_MARK):
        return _decode_link(text)
    if not text.startswith('{"t":'):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str) or not isinstance(obj.get("f"), str):
        return None
    return obj


def _decode_link(text: str) -> dict[str, Any] | None:
    parts = text.split("\n", 4)
    if len(parts) != 5 or len(parts[0]) != 3 or parts[0][1] not in _KINDS:
        return None
    letter = parts[0][2]
    payload = parts[4]
    item: LinkItem | None
    if letter == "d":
        item = payload
    elif letter == "b":
        try:
            item = base64.b64decode(payload, validate=True)
        except (ValueError, binascii.Error):
            return None
    elif letter == "e":
        fields = payload.split("\n", 2)
        if len(fields) != 3:
            return None
        item = ServerSentEvent(type=fields[0], id=fields[1], data=fields[2])
    elif letter == "k":
        item = KEEP_ALIVE
    elif letter == "y":
        item = EventTypes(tuple(payload.split("\n")) if payload else ())
    elif letter == "-":
        item = None
    else:
        return None
    return {"t": _KINDS[parts[0][1]], "f": parts[1], "to": parts[2], "l": parts[3], "i": item}
