"""A client's timer in the browser, armed so that hidden tabs do not throttle it to once a minute.

Chrome throttles the timers of a page hidden for a while ("intensive wake-up throttling") to one
wake-up a minute — but only timers at a *nesting level* of 5 or more: those set from a timer
callback, set from a timer callback, and so on. A client's timer is exactly such a chain (each
heartbeat check arms the next), so in a background tab a heartbeat of 25 s would run every 60 s,
and a reconnect due in half a second would wait up to a minute. :class:`BrowserTimers` arms every
``setTimeout`` from a ``MessageChannel`` message task instead, where the nesting level starts
again at 0: such timers keep running on one-second wake-ups in hidden pages. (Browsers also clamp
nested zero-delay timers to 4 ms; these are not nested, so they are not clamped either.)

A timer that comes due does not run its callback in the ``setTimeout`` task: it hands it to the
asyncio loop (``call_soon``), behind whatever the loop had already queued. Browsers are free to
order timer tasks and message tasks as they like (HTML leaves it to them), and they differ: after
``call_later(0, f)`` and ``await asyncio.sleep(0)``, Chromium and WebKit resume the task first,
Firefox runs ``f`` first. Through the loop, every engine keeps asyncio's order (CPython's too): a
task that was ready when a timer came due runs before the timer's callback, so a ``dispose()`` or
``cancel()`` it makes still wins. (Pyodide's ``call_soon`` is a message task as well: the callback
still arms its next timer at nesting level 0.)

Its two proxies (the channel's ``message`` handler and the ``setTimeout`` callback) belong to a
:class:`~pyrt.browser.proxies.ProxyOwner` and are destroyed by :meth:`BrowserTimers.dispose`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import js

from pyrt.browser.proxies import ProxyOwner

__all__ = ["BrowserTimers"]


class _Timer:
    __slots__ = ("callback", "cancelled", "delay", "handle", "key", "owner")

    def __init__(self, owner: BrowserTimers, key: int, delay: float, callback: Callable[[], None]) -> None:
        self.owner = owner
        self.key = key
        self.delay = delay
        self.callback = callback
        self.handle: Any = None  # the setTimeout id, once armed
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.owner.forget(self)


class BrowserTimers:
    """``call_later(delay, callback)`` on ``setTimeout``, each armed from a message task."""

    def __init__(self) -> None:
        self._owner = ProxyOwner()
        self._channel: Any = js.MessageChannel.new()
        self._channel.port1.onmessage = self._owner.proxy(self._arm)
        port2 = self._channel.port2
        self._post = port2.postMessage.bind(port2, 0)
        self._fire = self._owner.proxy(self._fired)
        self._waiting: deque[_Timer] = deque()
        self._armed: dict[int, _Timer] = {}  # by key
        self._keys = 0
        self._disposed = False
        self._loop = asyncio.get_event_loop()

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        """Call ``callback`` after ``delay`` seconds (at the earliest), from the asyncio loop,
        after the callbacks it had queued when the timer came due; returns a handle with
        ``cancel()``. Nothing is called after :meth:`dispose` or ``cancel()``."""
        self._keys += 1
        timer = _Timer(self, self._keys, delay, callback)
        if not self._disposed:
            self._waiting.append(timer)
            self._post()
        return timer

    def forget(self, timer: _Timer) -> None:
        if self._armed.pop(timer.key, None) is not None and not self._disposed:
            js.clearTimeout(timer.handle)

    def dispose(self) -> None:
        """Cancel everything and destroy the proxies."""
        if self._disposed:
            return
        self._disposed = True
        for timer in self._armed.values():
            js.clearTimeout(timer.handle)
        self._armed.clear()
        self._waiting.clear()
        self._channel.port1.onmessage = None
        self._channel.port1.close()
        self._owner.destroy_all()

    def _arm(self, event: Any) -> None:
        """A message task: a ``setTimeout`` set here has nesting level 0."""
        while self._waiting:
            timer = self._waiting.popleft()
            if timer.cancelled:
                continue
            timer.handle = js.setTimeout(self._fire, max(0, round(timer.delay * 1000)), timer.key)
            self._armed[timer.key] = timer

    def _fired(self, key: int) -> None:
        """The ``setTimeout`` task: queue the call behind what the loop has queued already."""
        if key in self._armed:
            self._loop.call_soon(self._run, key)

    def _run(self, key: int) -> None:
        timer = self._armed.pop(key, None)  # gone if cancelled or disposed since it came due
        if timer is not None and not timer.cancelled:
            timer.cancelled = True
            timer.callback()
