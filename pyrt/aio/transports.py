"""The sockets of one :class:`~pyrt.WebSocketClient`, by transport: WebSocket, and HTTP where
WebSockets do not pass (:mod:`pyrt.aio.http_transport`); the probe socket; what is remembered.

The engine decides (:mod:`pyrt.engine.transports`): which transport each connection uses
(``OpenSocket.transport``), when to probe the first one (``OpenProbe``) and what to remember
(``RememberTransport``). This module only makes the sockets and keeps the memory, one entry per
origin in the runtime's preferences (``localStorage`` on a page, a file on CPython), as
``"<transport> <until, Unix seconds>"`` under ``pyrt:transport:<scheme>://<host>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pyrt.aio import runtime
from pyrt.engine.transport_choice import DEFAULT_TRANSPORTS

if TYPE_CHECKING:
    from pyrt.ports.services import Services
    from pyrt.ports.transport import Transport
    from pyrt.wire.protocols import WireProtocol
    from pyrt.wire.types import Frame

__all__ = ["ClientTransports", "resolve_order"]

_KEY = "pyrt:transport:"


def resolve_order(
    transports: tuple[str, ...] | str, protocol: WireProtocol, custom: bool, custom_http: bool
) -> tuple[str, ...]:
    """The transports a client tries: ``transports`` when given; with ``"auto"``, WebSocket then
    HTTP for the pyrt protocol (whose servers have the HTTP binding), unless the client was given
    a WebSocket transport of its own and no HTTP one; WebSocket alone otherwise. (A client that
    shares a connection talks to it over its link: the tab holding the connection tries these.)"""
    if transports != "auto":
        return tuple(transports)
    if protocol.welcomes and (not custom or custom_http):
        return DEFAULT_TRANSPORTS
    return ("websocket",)


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute URL (``ws`` and ``http`` alike), else ``None``."""
    parts = urlsplit(url)
    if not parts.netloc:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


class _ProbeEvents:
    """The probe socket's events, for the engine."""

    __slots__ = ("closed", "message")

    def __init__(self, message: Callable[[Frame], None], closed: Callable[[], None]) -> None:
        self.message = message
        self.closed = closed

    def socket_opened(self) -> None:
        """Nothing yet: the probe counts when its welcome arrives."""

    def socket_message(self, data: Frame) -> None:
        self.message(data)

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None:
        self.closed()


class ClientTransports:
    """See the module docstring. ``websocket`` and ``http``: transports the user gave (``None``:
    the runtime's)."""

    def __init__(self, websocket: Transport | None, http: Transport | None) -> None:
        self.given = {"websocket": websocket, "http": http}
        self.made: dict[str, Transport] = {}
        self.probe: Transport | None = None

    def socket(self, name: str) -> Transport:
        """The transport of ``name``, made once."""
        made = self.made.get(name)
        if made is None:
            given = self.given.get(name)
            made = self.made[name] = given if given is not None else self._new(name)
        return made

    def fresh(self, name: str) -> Transport | None:
        """A new transport of ``name``, apart from the connection's: the runtime's, or a
        ``fresh()`` copy of the one the user gave (``None``: it has no such method)."""
        given = self.given.get(name)
        if given is None:
            return self._new(name)
        fresh = getattr(given, "fresh", None)
        made: Transport | None = fresh() if callable(fresh) else None
        return made

    def _new(self, name: str) -> Transport:
        if name == "http":
            from pyrt.aio.http_transport import HttpTransport  # only clients that fall back load it

            return HttpTransport(runtime.fetch_transport(), runtime.fetch_transport())
        return runtime.websocket_transport()

    # -------------------------------------------------------------------------------- probe

    def open_probe(
        self,
        name: str,
        url: str,
        protocols: Sequence[str],
        message: Callable[[Frame], None],
        closed: Callable[[], None],
    ) -> bool:
        """Open a probe socket over ``name``; ``False`` when none can be made here (a transport
        given by the user can be probed only through a ``fresh()`` copy of it)."""
        self.close_probe()
        probe = self.fresh(name)
        if probe is None:
            return False
        self.probe = probe
        try:
            probe.open(url, protocols, _ProbeEvents(message, closed))
        except Exception:
            self.close_probe()
            return False
        return True

    def close_probe(self) -> None:
        probe, self.probe = self.probe, None
        if probe is not None:
            probe.close(1000, "probe done", True)
            probe.dispose()

    # ------------------------------------------------------------------------------- memory

    @staticmethod
    def recall(services: Services, url: object) -> str | None:
        """The transport remembered for ``url``'s origin, while its memory lasts."""
        place = origin(url) if isinstance(url, str) else None
        preferences = services.preferences() if place is not None else None
        if preferences is None:
            return None
        value = preferences.get(_KEY + str(place))
        try:
            transport, until = (value or "").split(" ")
            return transport if float(until) > time.time() else None
        except ValueError:
            return None

    @staticmethod
    def remember(services: Services, url: object, transport: str | None, seconds: float) -> None:
        """Remember ``transport`` for ``url``'s origin for ``seconds`` (``None``: forget)."""
        place = origin(url) if isinstance(url, str) else None
        preferences = services.preferences() if place is not None else None
        if preferences is None:
            return
        value = None if transport is None else f"{transport} {time.time() + seconds:.0f}"
        preferences.set(_KEY + str(place), value)

    def dispose(self) -> None:
        self.close_probe()
        for transport in self.made.values():
            transport.dispose()
        self.made.clear()
