"""The broker interface: where publications are stored, numbered, replayed and fanned out.

The protocol code talks only to :class:`Broker`; :class:`~pyrt.server.brokers.memory.MemoryBroker`
keeps channels in this process, :class:`~pyrt.server.brokers.redis.RedisBroker` in Redis Streams
shared by every instance.
"""

from __future__ import annotations

import abc
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyrt.server.dedup import MessageDedup
from pyrt.server.offsets import OffsetKey, offset_key
from pyrt.server.presence import PresenceStore
from pyrt.wire.codec import encode_publication
from pyrt.wire.frames import RawJSON
from pyrt.wire.sse_encode import encode_event

if TYPE_CHECKING:
    from pyrt.server.http_relay import PostRelay

__all__ = ["Broker", "BrokerError", "History", "Listener", "Page", "Publication"]


class BrokerError(Exception):
    """The broker could not do what was asked (e.g. Redis is unreachable)."""


class Publication:
    """One publication. ``data_json`` is the data already encoded as JSON text: it is stored and
    sent as is.

    The wire encodings (:attr:`ws_frame`, :attr:`sse_event`) are built on each access and never
    kept here: a retained publication costs its data once, not three times. The hub builds each
    once per fan-out and shares it among subscribers.
    """

    __slots__ = ("channel", "data_json", "event", "key", "offset")

    def __init__(self, channel: str, offset: str, event: str, data_json: str) -> None:
        self.channel = channel
        self.offset = offset
        self.key: OffsetKey = offset_key(offset)
        self.event = event
        self.data_json = data_json

    @property
    def ws_frame(self) -> str:
        """The ``publication`` frame for ``/ws`` (one line: batched frames are separated by line
        breaks), the data going in as stored."""
        return encode_publication(self.channel, self.offset, self.event, RawJSON(self.data_json))

    @property
    def sse_event(self) -> bytes:
        """The event for ``/sse`` (:class:`UnicodeEncodeError` if the data is not valid text)."""
        return encode_event(self.data_json.encode(), type=self.event, id=self.offset)

    @property
    def size(self) -> int:
        """Bytes of memory this publication holds (its strings and the object itself)."""
        return (
            sys.getsizeof(self.data_json)
            + sys.getsizeof(self.channel)
            + sys.getsizeof(self.offset)
            + sys.getsizeof(self.event)
            + _OVERHEAD
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "offset": self.offset,
            "event": self.event,
            "data": json.loads(self.data_json),
        }

    def __repr__(self) -> str:
        return f"Publication({self.channel!r}, {self.offset!r}, {self.event!r}, {self.data_json[:60]!r})"


@dataclass(frozen=True, slots=True)
class History:
    """What a subscriber must replay.

    ``publications`` are those after ``since``, oldest first; ``latest`` is the channel's latest
    offset when it was read (``"0"`` when empty); ``recovered`` is ``False`` when publications
    right after ``since`` are no longer retained (then ``publications`` starts at the oldest).
    """

    publications: list[Publication]
    latest: str
    recovered: bool


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a channel's history, read on demand (:meth:`Broker.page`).

    ``publications`` in the order asked for (oldest first, or newest first with ``reverse``);
    ``latest`` is the channel's latest offset when it was read (``"0"``: nothing retained);
    ``recovered`` is ``False`` when, paging forward from ``since``, publications right after
    ``since`` are no longer retained (the page then starts at the oldest retained one);
    ``more`` says whether retained publications follow the page in its direction.
    """

    publications: list[Publication]
    latest: str
    recovered: bool
    more: bool


_OVERHEAD = 200  # the object, its key tuple and its slot in a channel's log


#: Called by the broker, on the event loop, for every live publication of a watched channel, in
#: offset order per channel.
Listener = Callable[[Publication], None]


class Broker(abc.ABC):
    """Stores publications per channel and delivers live ones to one :data:`Listener`.

    Lifecycle: ``await start(listener)`` once, then any calls, then ``await close()``.
    """

    #: ``"memory"`` or ``"redis"`` (shown by ``/healthz`` and ``/metrics``).
    kind: str = ""

    @property
    @abc.abstractmethod
    def message_dedup(self) -> MessageDedup:
        """The dedup window for ``message`` ids (shared by every instance on this broker)."""

    #: Who is in which channel (:mod:`pyrt.server.presence`), kept where the channels are.
    presence: PresenceStore

    @abc.abstractmethod
    async def start(self, listener: Listener) -> None:
        """Begin delivering live publications of watched channels to ``listener``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop delivering and release connections. Idempotent."""

    @abc.abstractmethod
    async def publish(
        self,
        channel: str,
        event: str,
        data_json: str,
        *,
        publish_id: str | None = None,
        scope: str = "",
        retention: int | None = None,
    ) -> tuple[str, bool]:
        """Append a publication; return ``(offset, duplicate)``.

        With ``publish_id``, a second publish with the same id into the same channel from the
        same ``scope`` (the client's identity) within the dedup window appends nothing and
        returns the first one's offset with ``duplicate=True``. ``retention`` overrides how many
        publications this channel keeps. :class:`ValueError` if ``data_json`` is not valid
        text (a lone surrogate): nothing that cannot be sent is ever stored.
        """

    @abc.abstractmethod
    async def watch(self, channel: str) -> None:
        """Deliver live publications of ``channel`` to the listener from now on.

        After it returns, every publication not yet in a :meth:`history` read made after it
        reaches the listener (so replay + live has no gap; duplicates are dropped by offset).
        """

    @abc.abstractmethod
    def unwatch(self, channel: str) -> None:
        """Stop delivering ``channel`` (no local subscriber left)."""

    @abc.abstractmethod
    async def history(
        self, channel: str, since: OffsetKey | None, *, limit: int | None = None, max_bytes: int | None = None
    ) -> History:
        """Publications after ``since`` (``None``: none, just the latest offset).

        At most ``limit`` publications and about ``max_bytes`` of data (the newest ones; at least
        one): when more were missed, ``recovered`` is ``False``.
        """

    @abc.abstractmethod
    async def page(
        self, channel: str, since: OffsetKey | None, *, limit: int, reverse: bool = False, max_bytes: int
    ) -> Page:
        """A page of retained publications, for history on demand.

        Forward (``reverse=False``): those after ``since`` (``None``: from the oldest retained),
        oldest first. Backward (``reverse=True``): those before ``since`` (``None``: from the
        newest), newest first. At most ``limit`` publications and about ``max_bytes`` of data
        (at least one). The next page in the same direction starts after the last offset given.
        """

    async def housekeeping(self) -> None:
        """Forget what has expired (called every few seconds by the server)."""
        return None

    async def healthy(self) -> bool:
        """Whether the broker can serve requests now."""
        return True

    def post_relay(self, instance: str) -> PostRelay | None:
        """What hands HTTP-binding POSTs to the instance that holds their connection, for the
        instances sharing this broker (:mod:`pyrt.server.http_relay`); ``None``: one process."""
        return None
