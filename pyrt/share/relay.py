"""A relay: the pure routing between the links of a share group and its one real connection.

With ``share=``, the leader of a group holds the real connection and every client, the leader's
own included, reaches it over a *link*; a hub (:class:`pyrt.aio.hub.Hub`) runs the links and
the connection, and a relay decides what crosses. The hub is one, generic over this protocol;
the relays are its strategies:

- :class:`~pyrt.share.ws_relay.WsRelay` for a WebSocket: frames from the links to the server
  (acks routed back by id, one server subscription per channel, a presence member per link...);
- :class:`~pyrt.share.sse_relay.EventRelay` for an event stream: every event to every link, each
  caught up from its own last event id.

A relay is told what the links do (:meth:`Relay.link_requested`, :meth:`Relay.link_sent`,
:meth:`Relay.link_closed`) and that the real connection is gone (:meth:`Relay.lost`); what the
real connection brings it hears from the hub's connection, through inputs of its own kind. Every
input returns the :data:`RelayAction` list the hub carries out, in order. What travels on a link
is a :data:`LinkItem`: a WebSocket frame, a stream event, a keep-alive, or the event types a
stream's client listens to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pyrt.wire.sse import ServerSentEvent
from pyrt.wire.types import Frame

__all__ = [
    "KEEP_ALIVE",
    "CloseLink",
    "EventTypes",
    "KeepAlive",
    "LinkItem",
    "Listen",
    "OpenLink",
    "Relay",
    "RelayAction",
    "ToLink",
    "ToServer",
]


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Bytes without an event on the real stream (a keep-alive comment): the link's stream is alive."""


KEEP_ALIVE = KeepAlive()


@dataclass(frozen=True, slots=True)
class EventTypes:
    """From a stream's link: the named event types its client listens to now."""

    types: tuple[str, ...]


#: What travels on a link, either way.
LinkItem = Frame | ServerSentEvent | KeepAlive | EventTypes


@dataclass(frozen=True, slots=True)
class ToServer:
    """Send ``frame`` on the real connection, as it is."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class ToLink:
    """Give ``item`` to the client at the end of ``link``. ``in_turn``: an answer to the link
    that must not overtake the link's frames still waiting for the real connection (a pong: it
    tells the link's client that everything it sent before its ping was read)."""

    link: str
    item: LinkItem
    in_turn: bool = False


@dataclass(frozen=True, slots=True)
class OpenLink:
    """``link`` is open: its client sees its socket or stream open, ``first`` arriving with it
    (a WebSocket link's welcome: the client is never open without it)."""

    link: str
    first: LinkItem | None = None


@dataclass(frozen=True, slots=True)
class CloseLink:
    """``link`` is closed: its client sees its socket close (or its stream fail) with
    ``code``/``reason``, and reconnects."""

    link: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Listen:
    """The real stream must report events of ``type`` (a native ``EventSource`` reports only
    the types someone listens to)."""

    type: str


RelayAction = ToServer | ToLink | OpenLink | CloseLink | Listen


class Relay(Protocol):
    """What the generic hub asks of a relay (see the module docstring)."""

    def participants(self) -> int:
        """Distinct participants (tabs, workers) with an open or waiting link."""
        ...

    def link_requested(self, link: str, participant: str, extra: Mapping[str, Any]) -> list[RelayAction]:
        """A client asks to open ``link`` (``extra``: what its stream needs, such as the last
        event id it saw); opened at once while the real connection is open, else when it opens."""
        ...

    def link_sent(self, link: str, item: LinkItem) -> list[RelayAction]:
        """``item`` from the client at ``link``."""
        ...

    def link_closed(self, link: str) -> list[RelayAction]:
        """The client closed ``link``, or its tab went away."""
        ...

    def lost(self, code: int, reason: str) -> list[RelayAction]:
        """The real connection is gone (or the hub stops): every open link closes with
        ``code``/``reason``; waiting links wait for the next connection."""
        ...
