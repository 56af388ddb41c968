"""The two types every layer names: a WebSocket frame and a message id.

Defined once here (and nowhere else) so the engine, the transports and the fakes agree.
"""

from __future__ import annotations

__all__ = ["AckId", "Frame"]

Frame = str | bytes
"""One WebSocket message: ``str`` for a text frame, ``bytes`` for a binary one."""

AckId = str | int
"""The id of a message that wants an ack: ``"<prefix>-<n>"``, or an int for numeric-id servers."""
