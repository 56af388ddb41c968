"""Credentials that refresh without dropping the connection: when to ask for a new token.

A client given ``token=`` (a callable, sync or async) calls it before every connection attempt
and sends the token in the WebSocket handshake (as the subprotocol ``bearer.<token>``, the one
place a browser lets a page put it; never in the URL). A pyrt server then says in ``welcome``
how long that token lasts (``ttl``, seconds). The rules of :class:`TokenRefresh`:

1. When three quarters of the ``ttl`` have passed, the client calls ``token()`` again and sends
   the new token in a ``refresh`` frame; the server answers with the new ``ttl`` and the
   connection goes on (subscriptions, presence and acks untouched).
2. A refresh that fails (the callable raised, the server refused the token, no answer in time)
   is tried again after a quarter of the time left, at least :data:`MIN_RETRY` seconds later;
   with less than that left, the client lets the token expire.
3. A token that expires on a live connection ends it with close 4001, which the client treats
   as "fetch a fresh token and reconnect": the callable runs before the next attempt.
4. A new connection starts over from its own ``welcome``; a refresh in flight on a connection
   that is gone is forgotten (the next connection carries a fresh token anyway).
5. Each request for a token is numbered, and only one answer is taken per request: the answer
   of a request that is not the current one (its connection is gone, or a newer request
   started) is ignored, so a slow callable never sends a second ``refresh`` beside the current
   one, nor starts a second schedule.

:func:`check_token` tells what a callable returned that cannot travel in a handshake.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIN_RETRY", "REFRESH_AT", "TokenRefresh", "check_token"]

REFRESH_AT: Final = 0.75  # refresh once this fraction of a token's lifetime has passed
MIN_RETRY: Final = 1.0  # seconds between two refresh attempts, at least

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_token(token: object) -> str:
    """``token`` if it can travel in a ``Sec-WebSocket-Protocol`` header (an HTTP token: letters,
    digits and ``!#$%&'*+-.^_`|~``, as base64url tokens and JWTs are); else a clear error that
    never shows the token itself."""
    if not isinstance(token, str):
        raise TypeError(f"the token callable must return a str, got {type(token).__name__}")
    if not token:
        raise ValueError("the token callable returned an empty string")
    if len(token) > 8192 or not _TCHAR.issuperset(token):
        raise ValueError(
            "the token callable returned a string that cannot travel in a WebSocket handshake "
            f"({len(token)} characters; allowed: letters, digits and !#$%&'*+-.^_`|~)"
        )
    return token


class TokenRefresh:
    """The refresh schedule of one connection's token (see the module docstring).

    Feed it :meth:`expires_in` (from ``welcome`` or a refresh's answer), :meth:`started`,
    :meth:`failed` and :meth:`reset`; ask :meth:`due` when the timer fires, :meth:`takes` when
    the callable answers, and :meth:`next_deadline` for the timer.
    """

    __slots__ = ("answered", "due_at", "expires_at", "fetching", "request")

    def __init__(self) -> None:
        self.expires_at: float | None = None
        self.due_at: float | None = None
        self.fetching = False  # a refresh is under way (the callable, or the frame's answer)
        self.request = 0  # the number of the latest request for a token (rule 5)
        self.answered = False  # the callable answered the current request already

    def expires_in(self, ttl: float, now: float) -> None:
        """The server says the current token lasts ``ttl`` more seconds."""
        self.fetching = False
        self.expires_at = now + max(0.0, ttl)
        self.due_at = now + max(0.0, ttl) * REFRESH_AT

    def due(self, now: float) -> bool:
        """Whether a refresh must start now."""
        return not self.fetching and self.due_at is not None and now >= self.due_at

    def started(self) -> int:
        """A refresh started (the callable is being called); returns the request's number."""
        self.fetching = True
        self.answered = False
        self.due_at = None
        self.request += 1
        return self.request

    def takes(self, request: int | None) -> bool:
        """Whether the callable's answer to ``request`` (``None``: the current one) is taken:
        only the first answer to the current request, while it is under way (rule 5)."""
        if not self.fetching or self.answered or (request is not None and request != self.request):
            return False
        self.answered = True
        return True

    def failed(self, now: float) -> None:
        """The refresh failed: try again after a quarter of the time left, or let it expire."""
        self.fetching = False
        left = (self.expires_at - now) if self.expires_at is not None else 0.0
        self.due_at = now + max(MIN_RETRY, left / 4) if left > MIN_RETRY else None

    def reset(self) -> None:
        """The connection is gone: nothing to refresh until the next ``welcome``."""
        self.expires_at = self.due_at = None
        self.fetching = False

    def next_deadline(self) -> float | None:
        return None if self.fetching else self.due_at
