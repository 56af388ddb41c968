"""What a shared connection needs from the runtime: a lock that elects one leader, and a channel.

In a browser, :class:`ShareChannel` is :mod:`pyrt.browser.share_channel`: a Web Lock
(``navigator.locks``) held by the leader for as long as it leads (the browser releases it when
the tab or worker goes away, crash included) and a ``BroadcastChannel`` to every other page and
worker of the origin. :class:`pyrt.testing.FakeShareBus` plays both in memory.
:mod:`pyrt.aio.runtime` picks it. Typing only: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["ShareChannel"]


class ShareChannel(Protocol):
    """One participant's view of a share group named ``name``.

    Contract: :meth:`join`, then :meth:`listen`, before anything else; ``on_message`` receives
    the text of every message another participant of the group posts (never one's own).
    :meth:`request_lead` queues for the group's lock; ``granted`` is called once this participant
    holds it, which it keeps until :meth:`resign` or :meth:`dispose` (or until its context goes
    away). After :meth:`dispose`, nothing is reported.
    """

    name: str

    def listen(self, on_message: Callable[[str], None]) -> None: ...

    def post(self, text: str) -> None: ...

    def request_lead(self, granted: Callable[[], None]) -> None: ...

    def resign(self) -> None: ...

    def members(self, done: Callable[[set[str]], None]) -> None:
        """Call ``done`` with the ids of the participants alive now (each holds a lock of its
        own, taken by :meth:`listen` under the id passed to :meth:`join`)."""
        ...

    def join(self, participant: str) -> None:
        """Say who this participant is (before :meth:`listen`): it holds a lock of its own until
        :meth:`dispose`, so the leader can tell it is alive."""
        ...

    def dispose(self) -> None: ...
