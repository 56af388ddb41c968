"""How a :class:`~pyrt.aio.websocket.WebSocketClient` opens each attempt.

The URL, the subprotocols and the token may each be a callable (sync or async), called before
every attempt; a failure to prepare counts as a failed attempt (1006), so the client backs off and
tries again. The token travels as the subprotocol ``bearer.<token>`` and is never shown in an
error. The probe socket (see :mod:`pyrt.aio.transports`) reopens what the last attempt opened, on
the other transport; a token refresh in place calls the token callable and hands the result to
the engine.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, cast

from pyrt.aio.driver import Driver
from pyrt.engine.credentials import check_token
from pyrt.engine.states import State
from pyrt.wire.protocols import WireProtocol
from pyrt.wire.types import Frame

if TYPE_CHECKING:
    from pyrt.aio.transports import ClientTransports
    from pyrt.engine.websocket import WebSocketEngine
    from pyrt.ports.transport import SocketEvents, Transport

__all__ = ["TOKEN_PROTOCOL_PREFIX", "Opening", "ProtocolsSource", "TokenSource", "UrlSource"]

UrlSource = str | Callable[[], str] | Callable[[], Awaitable[str]]
ProtocolsSource = (
    str
    | Sequence[str]
    | Callable[[], str | Sequence[str]]
    | Callable[[], Awaitable[str | Sequence[str]]]
    | None
)
TokenSource = Callable[[], str] | Callable[[], Awaitable[str]]

TOKEN_PROTOCOL_PREFIX = "bearer."  # the token travels as the subprotocol "bearer.<token>"


class Opening(Driver):
    """The opening half of :class:`~pyrt.aio.websocket.WebSocketClient`: each attempt's URL,
    subprotocols and token, the socket's ``open``, the probe, and in-place token refreshes."""

    url: UrlSource
    protocols: ProtocolsSource
    token: TokenSource | None
    _engine: WebSocketEngine
    _transport: Transport | None
    _sockets: ClientTransports
    _opening: asyncio.Task[None] | None
    _fetching: asyncio.Task[None] | None
    _last_open: tuple[str, list[str]] | None  # what the probe opens

    def socket_closed(self, code: int, reason: str, was_clean: bool) -> None:
        raise NotImplementedError  # the client's: an attempt that could not open ends as a close

    async def _refresh_token(self, request: int) -> None:
        """Call the token callable for an in-place refresh and hand the result to the engine."""
        engine = self._engine
        assert self.token is not None
        try:
            token = await _call_token(self.token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            engine.token_failed(exc, self._now(), request)
        else:
            engine.token_fetched(token, self._now(), request)
        self._pump()

    def _open(self, attempt: int) -> None:
        if isinstance(self.url, str) and not callable(self.protocols) and self.token is None:
            self._open_now(self.url, self.protocols)
            return
        self._opening = self._ensure_loop().create_task(self._resolve_and_open())

    async def _resolve_and_open(self) -> None:
        """Resolve what this attempt needs, then open. A failure counts as a failed attempt
        (1006): the client backs off and tries again."""
        try:
            url, protocols, token = await _resolve(self.url, self.protocols, self.token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._opening = None
            self._handlers.emit("error", exc)
            self._engine.prepare_failed(f"preparing the connection failed: {exc}", self._now())
            self._pump()
            return
        self._opening = None
        if self._engine.state is State.CONNECTING:
            self._open_now(url, protocols, token)

    def _open_now(self, url: str, protocols: str | Sequence[str] | None, token: str | None = None) -> None:
        assert self._transport is not None
        offered = _offered(self._engine.protocol, protocols, token)
        self._last_open = (url, offered)
        try:
            self._transport.open(url, offered, cast("SocketEvents", self))  # the client listens
        except Exception as exc:  # a malformed URL, a refused subprotocol list
            if token is not None and token in str(exc):  # a message quoting the subprotocols
                exc = RuntimeError(str(exc).replace(token, "<token>"))  # never shows the token
            self._handlers.emit("error", exc)
            self.socket_closed(1006, f"could not open the socket: {exc}", False)

    def _open_probe(self, name: str) -> None:
        """Open the probe socket the engine asked for (see :mod:`pyrt.aio.transports`)."""
        engine = self._engine

        def message(frame: Frame) -> None:
            engine.probe_received(frame, self._now())
            self._pump()

        def closed() -> None:
            engine.probe_closed(self._now())
            self._pump()

        last = self._last_open
        if last is None or not self._sockets.open_probe(name, last[0], last[1], message, closed):
            self._ensure_loop().call_soon(closed)  # nothing to probe with here: it failed


# ----------------------------------------------------------------------------- what an attempt needs


async def _call_token(source: TokenSource) -> str:
    token = source()
    if inspect.isawaitable(token):
        token = await token
    return check_token(token)


async def _resolve(
    url: UrlSource, protocols: ProtocolsSource, token: TokenSource | None
) -> tuple[str, str | Sequence[str] | None, str | None]:
    """The URL, the subprotocols and the token of one attempt: each may be a callable (sync or
    async), called now."""
    where = url if isinstance(url, str) else url()
    if inspect.isawaitable(where):
        where = await where
    if not isinstance(where, str):
        raise TypeError(f"the url callable returned {type(where).__name__}, not str")
    offered = protocols() if callable(protocols) else protocols
    if inspect.isawaitable(offered):
        offered = await offered
    return where, offered, await _call_token(token) if token is not None else None


def _offered(protocol: WireProtocol, protocols: str | Sequence[str] | None, token: str | None) -> list[str]:
    """The subprotocols to offer: the wire protocol's own, the application's, then the token."""
    offered = list(protocol.subprotocols or ((protocol.subprotocol,) if protocol.subprotocol else ()))
    if isinstance(protocols, str):
        offered.append(protocols)
    elif protocols:
        offered.extend(protocols)
    if token is not None:
        offered.append(TOKEN_PROTOCOL_PREFIX + token)
    return offered
