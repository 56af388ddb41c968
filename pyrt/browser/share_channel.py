"""A share group in the browser: a Web Lock elects the leader, a ``BroadcastChannel`` carries the rest.

:class:`BrowserShareChannel` is the :class:`~pyrt.share.channel.ShareChannel` of pages and
workers alike (both have ``navigator.locks`` and ``BroadcastChannel``):

- **leading** is holding the exclusive lock named after the group: ``navigator.locks.request``
  calls back once it is granted, with the promise it keeps the lock for — one that resolves when
  this participant resigns (an ``AbortController``'s ``abort`` event resolves it). The browser
  releases the lock by itself when the page or worker goes away, crashed or not, and grants it
  to the next in line;
- **alive** is holding (or having requested) a lock of one's own (``<group>#<participant>``):
  the leader lists the held and pending locks (``navigator.locks.query()``) to drop the links of
  participants that vanished;
- **messages** are strings on a ``BroadcastChannel`` named after the group: every other page and
  worker of the origin with that name receives them.

Proxies belong to one :class:`~pyrt.browser.proxies.ProxyOwner`: the channel's ``message``
handler and each lock request's callback (destroyed by :meth:`BrowserShareChannel.dispose`, after
the pending requests were aborted), and the ``Promise`` executor of each grant, destroyed as soon as
the ``Promise`` is built. No eval: rejections of aborted requests go to a built-in function.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import js
from pyodide.ffi import JsException, to_js

from pyrt.browser.proxies import ProxyOwner

__all__ = ["BrowserShareChannel", "sharing_supported"]


def sharing_supported() -> bool:
    """True when this context has Web Locks and ``BroadcastChannel``."""
    try:
        return js.navigator.locks is not None and js.BroadcastChannel is not None
    except AttributeError:
        return False


class _Hold:
    """One lock request: pending until granted, then held until :meth:`release`."""

    __slots__ = ("cancel", "granted", "release_signal")

    def __init__(self) -> None:
        self.cancel = js.AbortController.new()  # aborts the request while it is pending
        self.release_signal = js.AbortController.new()  # resolves the held lock's promise
        self.granted = False

    def release(self) -> None:
        if self.granted:
            self.release_signal.abort()
        else:
            self.cancel.abort()


class BrowserShareChannel:
    """See the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._owner = ProxyOwner()
        self._channel: Any = None
        self._lead: _Hold | None = None
        self._member: _Hold | None = None
        self._participant = ""
        self._tasks: set[asyncio.Future[None]] = set()
        self._disposed = False

    def join(self, participant: str) -> None:
        self._participant = participant
        self._member = self._request(f"{self.name}#{participant}", None)

    def listen(self, on_message: Callable[[str], None]) -> None:
        if self._channel is not None:
            return

        def message(event: Any) -> None:
            data = event.data
            if type(data) is str:
                on_message(data)

        self._channel = js.BroadcastChannel.new(self.name)
        self._channel.onmessage = self._owner.proxy(message)

    def post(self, text: str) -> None:
        if self._channel is not None:
            with contextlib.suppress(JsException):  # closed meanwhile
                self._channel.postMessage(text)

    def request_lead(self, granted: Callable[[], None]) -> None:
        if self._lead is None and not self._disposed:
            self._lead = self._request(self.name, granted)

    def resign(self) -> None:
        hold, self._lead = self._lead, None
        if hold is not None:
            hold.release()

    def members(self, done: Callable[[set[str]], None]) -> None:
        prefix = f"{self.name}#"

        async def query() -> None:
            try:
                snapshot = await js.navigator.locks.query()
            except JsException:
                return
            if self._disposed:
                return
            names = [str(info.name) for info in (*snapshot.held, *snapshot.pending)]
            done({name[len(prefix) :] for name in names if name.startswith(prefix)})

        task = asyncio.ensure_future(query())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def dispose(self) -> None:
        if self._disposed:
            return
        self._disposed = True
        self.resign()
        if self._member is not None:
            self._member.release()
            self._member = None
        if self._channel is not None:
            self._channel.onmessage = None
            self._channel.close()
            self._channel = None
        for task in list(self._tasks):
            task.cancel()
        self._owner.destroy_all()

    # -- machinery

    def _request(self, name: str, granted: Callable[[], None] | None) -> _Hold:
        hold = _Hold()
        owner = self._owner

        def executor(resolve: Any, reject: Any) -> None:
            hold.release_signal.signal.addEventListener("abort", resolve)

        def callback(lock: Any) -> Any:
            if self._disposed:
                return None  # released at once
            hold.granted = True
            keep = owner.proxy(executor)
            try:
                promise = js.Promise.new(keep)  # the executor runs now, inside the constructor
            finally:
                owner.release(keep)
            if granted is not None:
                granted()
            return promise

        options = to_js({"signal": hold.cancel.signal}, dict_converter=js.Object.fromEntries)
        request = js.navigator.locks.request(name, options, owner.proxy(callback))
        request.catch(js.Boolean)  # an aborted request rejects: nothing to report
        return hold
