"""Share groups in memory: Web Locks and ``BroadcastChannel`` for clients made with ``share=``."""

from __future__ import annotations

import functools
from collections.abc import Callable


class FakeShareBus:
    """Share groups in memory: what Web Locks and ``BroadcastChannel`` do for the tabs of a
    browser, for clients made with ``share=bus.channel("app")`` (one channel per client).

    Each group's lock goes to its requests in order; a message reaches every other channel of the
    group, later (through ``schedule``, e.g. ``loop.call_soon``; default: at once). :meth:`crash`
    makes a channel's participant vanish as a killed tab does: its locks are released and it
    receives nothing more, without a word to the others.
    """

    def __init__(self, schedule: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.schedule: Callable[[Callable[[], None]], object] = schedule or (lambda callback: callback())
        self.channels: list[FakeShareChannel] = []
        self._queues: dict[str, list[tuple[FakeShareChannel, Callable[[], None] | None]]] = {}
        self.posted: list[tuple[str, str]] = []  # (group, text) of every message, for tests

    def channel(self, name: str = "app") -> FakeShareChannel:
        channel = FakeShareChannel(self, name)
        self.channels.append(channel)
        return channel

    def holder(self, name: str) -> FakeShareChannel | None:
        """Who holds lock ``name`` now."""
        queue = self._queues.get(name)
        return queue[0][0] if queue else None

    def crash(self, channel: FakeShareChannel) -> None:
        """``channel``'s tab dies: no ``bye``, its locks go to the next in line."""
        channel.dead = True
        self._release_all(channel)

    # -- for FakeShareChannel

    def post(self, sender: FakeShareChannel, text: str) -> None:
        self.posted.append((sender.name, text))
        for channel in self.channels:
            if channel is not sender and channel.name == sender.name and channel.listening:
                self.schedule(functools.partial(channel.deliver, text))

    def request(self, channel: FakeShareChannel, lock: str, granted: Callable[[], None] | None) -> None:
        queue = self._queues.setdefault(lock, [])
        queue.append((channel, granted))
        if len(queue) == 1 and granted is not None:
            self.schedule(lambda: self._grant(lock, channel))

    def release(self, channel: FakeShareChannel, lock: str) -> None:
        queue = self._queues.get(lock, [])
        head = queue[0][0] if queue else None
        self._queues[lock] = [entry for entry in queue if entry[0] is not channel]
        if head is channel and self._queues[lock]:
            following, granted = self._queues[lock][0]
            if granted is not None:
                self.schedule(lambda: self._grant(lock, following))

    def held(self) -> set[str]:
        return {lock for lock, queue in self._queues.items() if queue}

    def _grant(self, lock: str, channel: FakeShareChannel) -> None:
        queue = self._queues.get(lock, [])
        if queue and queue[0][0] is channel and not channel.dead:
            granted = queue[0][1]
            if granted is not None:
                granted()

    def _release_all(self, channel: FakeShareChannel) -> None:
        for lock in [lock for lock, queue in self._queues.items() if any(c is channel for c, _ in queue)]:
            self.release(channel, lock)


class FakeShareChannel:
    """One participant's :class:`~pyrt.share.channel.ShareChannel` on a :class:`FakeShareBus`."""

    def __init__(self, bus: FakeShareBus, name: str) -> None:
        self.bus = bus
        self.name = name
        self.participant = ""
        self.listening = False
        self.dead = False
        self.disposed = False
        self._on_message: Callable[[str], None] | None = None

    def join(self, participant: str) -> None:
        self.participant = participant
        self.bus.request(self, f"{self.name}#{participant}", None)

    def listen(self, on_message: Callable[[str], None]) -> None:
        self._on_message = on_message
        self.listening = True

    def post(self, text: str) -> None:
        if not self.dead and not self.disposed:
            self.bus.post(self, text)

    def request_lead(self, granted: Callable[[], None]) -> None:
        self.bus.request(self, self.name, granted)

    def resign(self) -> None:
        self.bus.release(self, self.name)

    def members(self, done: Callable[[set[str]], None]) -> None:
        prefix = f"{self.name}#"
        done({lock[len(prefix) :] for lock in self.bus.held() if lock.startswith(prefix)})

    def dispose(self) -> None:
        self.disposed = True
        self.listening = False
        self.bus._release_all(self)

    def deliver(self, text: str) -> None:
        if self.listening and not self.dead and self._on_message is not None:
            self._on_message(text)
