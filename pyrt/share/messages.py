"""The messages the participants of a share group exchange over their channel, as JSON text.

Every message names its sender (``f``) and, for the traffic of a link, the participant it is
for (``to``) and the link (``l``):

====================  ============================================================================
``hello``             a participant joined: the leader answers with ``leader``
``leader`` (``e``)    I lead now (``e``: when I started leading, for tie-breaks)
``bye``               the leader stops leading (its client closed, its page went away)
``ready``             the leader's real connection is open (again): reconnect now
``open`` (``x``)      a client opens a link to the leader (``x``: what its stream needs)
``opened`` (``d|b``)  the link is open (a WebSocket link: with its first frame, the welcome)
``close`` (``c r``)   the link is closed (either side), with a close code and reason
``frame`` (``d|b``)   a WebSocket frame on a link, text (``d``) or base64 binary (``b``)
``event`` (``y i d``) an SSE event on a link: type, id, data
``listen`` (``y``)    a client's SSE event types changed
``tabs`` (``n``)      how many participants use the shared connection
====================  ============================================================================
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pyrt.wire.types import Frame

__all__ = ["decode", "encode", "frame_fields", "frame_of"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode(kind: str, sender: str, **fields: Any) -> str:
    """A message of ``kind`` from ``sender`` as text."""
    return _encode({"t": kind, "f": sender, **fields})


def decode(text: Any) -> dict[str, Any] | None:
    """A message back; ``None`` for anything that is not one (another library's traffic)."""
    if not isinstance(text, str) or not text.startswith('{"t":'):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str) or not isinstance(obj.get("f"), str):
        return None
    return obj


def frame_fields(frame: Frame) -> dict[str, Any]:
    """The fields carrying ``frame`` in a ``frame`` message."""
    if isinstance(frame, str):
        return {"d": frame}
    return {"b": base64.b64encode(frame).decode("ascii")}


def frame_of(message: dict[str, Any]) -> Frame | None:
    """The frame a ``frame`` message carries."""
    text = message.get("d")
    if isinstance(text, str):
        return text
    data = message.get("b")
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            return None
    return None
