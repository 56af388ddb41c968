"""Runtime services in memory: a page the test moves by hand, a store, the loop's timers, a share bus."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyrt.errors import ShareUnavailable
from pyrt.persist.records import MemoryRecordStore, RecordStore, Storage, as_record_store

if TYPE_CHECKING:
    from pyrt.ports.services import Cancellable, PageEvents
    from pyrt.testing.share_bus import FakeShareBus, FakeShareChannel


class FakeServices:
    """The :class:`~pyrt.ports.services.Services` of a test: ``WebSocketClient(url,
    transport=FakeTransport(server), services=FakeServices())`` (each fake transport carries one
    already, as :attr:`FakeTransport.services`, which a client given no ``services=`` uses).

    - The page: :meth:`page_online`, :meth:`page_visible`, :meth:`page_backgrounded`,
      :meth:`page_hidden` (``pagehide``) and :meth:`page_shown` report the event to every
      client watching (:attr:`watchers`), in the order they started.
    - :meth:`record_store`: ``storage`` (a :class:`~pyrt.persist.records.RecordStore`, or any
      object with ``getItem``/``setItem``/``removeItem``), else one durable in-memory store made
      with the services: the clients given the same services share it, as a browser's tabs share
      ``localStorage`` across reloads.
    - :meth:`timers`: the event loop's ``call_later``.
    - :meth:`share_channel`: a channel of ``bus`` (a :class:`~pyrt.testing.FakeShareBus`), so
      ``share="name"`` works as in a browser; without one, sharing is unavailable.
    """

    def __init__(self, storage: Storage | RecordStore | None = None, bus: FakeShareBus | None = None) -> None:
        self.store = as_record_store(storage) if storage is not None else MemoryRecordStore(durable=True)
        self.bus = bus
        self.watchers: list[PageEvents] = []
        self.remembered = FakePreferences()  # what clients remember across "page loads"

    # -- the Services protocol

    def watch_page(self, events: PageEvents) -> _Watch:
        self.watchers.append(events)
        return _Watch(self, events)

    def record_store(self) -> RecordStore | None:
        return self.store

    def timers(self, loop: Any) -> _LoopTimers:
        return _LoopTimers(loop)

    def preferences(self) -> FakePreferences:
        return self.remembered

    def share_channel(self, name: str) -> FakeShareChannel:
        if self.bus is None:
            raise ShareUnavailable("these FakeServices have no share bus (FakeServices(bus=FakeShareBus()))")
        return self.bus.channel(name)

    # -- the test's controls: the page

    def page_online(self) -> None:
        self._fire("page_online")

    def page_visible(self) -> None:
        self._fire("page_visible")

    def page_backgrounded(self) -> None:
        self._fire("page_backgrounded")

    def page_hidden(self) -> None:
        self._fire("page_hidden")

    def page_shown(self) -> None:
        self._fire("page_shown")

    def _fire(self, name: str) -> None:
        for events in list(self.watchers):
            if events in self.watchers:  # not stopped by an earlier one
                getattr(events, name)()


class _Watch:
    __slots__ = ("events", "services")

    def __init__(self, services: FakeServices, events: PageEvents) -> None:
        self.services, self.events = services, events

    def stop(self) -> None:
        if self.events in self.services.watchers:
            self.services.watchers.remove(self.events)


class _LoopTimers:
    __slots__ = ("loop",)

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        handle: Cancellable = self.loop.call_later(delay, callback)
        return handle

    def dispose(self) -> None:
        """Nothing to release."""


class CarriesServices:
    """What every fake transport has: :attr:`services`, which a client given no ``services=``
    uses, and :attr:`page`, those services once a client watches the page (``page_hidden()``
    & co fire its events)."""

    services: FakeServices

    @property
    def page(self) -> FakeServices | None:
        return self.services if self.services.watchers else None


class FakePreferences:
    """Remembered facts in a dict (:attr:`values`), shared by the clients of one FakeServices."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value
