"""A fake WebSocket runtime: ``WebSocketClient(url, transport=FakeTransport(server))``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyrt.persist.records import RecordStore, Storage
from pyrt.ports.transport import SocketEvents
from pyrt.testing.fake_server import FakePyrtServer, ServerConnection
from pyrt.testing.services import CarriesServices, FakeServices
from pyrt.wire.types import Frame


@dataclass(eq=False)
class FakeSocket:
    """One socket the engine asked for."""

    attempt: int
    state: str = "connecting"  # "connecting" | "open" | "closing" | "closed"
    sent: list[Frame] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    detached: bool = False  # the engine gave up on it
    blackholed: bool = False  # frames vanish both ways (a half-open connection)
    buffered_amount: int = 0
    conn: ServerConnection | None = None
    url: str = ""
    protocols: tuple[str, ...] = ()
    events: SocketEvents | None = None
    transport: str = "websocket"  # what the engine opened it over


class FakeTransport(CarriesServices):
    """An in-memory transport for :class:`~pyrt.WebSocketClient`, on any runtime.

    With a ``server``, each socket connects to it (while ``server.accepting``) and frames flow
    both ways; without one, the test plays the server with :meth:`accept`, :meth:`deliver` and
    :meth:`drop`. ``schedule(callback)`` decides when socket events fire: pass
    ``loop.call_soon`` for realistic asynchrony (the default runs them at once).

    It carries the runtime around it too: :attr:`services`, a :class:`FakeServices` that a
    client given no ``services=`` uses (its page, its timers, and ``persist=`` state in
    ``storage``: ``FakeTransport(server, storage=store)`` lets two clients share a store, as a
    page and its reload share ``localStorage``; by default a durable in-memory store of its own).
    :attr:`page` is those services once a client watches the page:
    ``transport.page.page_hidden()`` fires ``pagehide``.
    """

    def __init__(
        self,
        server: FakePyrtServer | None = None,
        schedule: Callable[[Callable[[], None]], object] | None = None,
        storage: Storage | RecordStore | None = None,
    ) -> None:
        self.server = server
        self.schedule: Callable[[Callable[[], None]], object] = schedule or (lambda callback: callback())
        self.sockets: list[FakeSocket] = []
        self.services = FakeServices(storage)
        self.disposed = False

    @property
    def socket(self) -> FakeSocket | None:
        if self.sockets and self.sockets[-1].state not in ("closed",) and not self.sockets[-1].detached:
            return self.sockets[-1]
        return None

    # -- the Transport protocol

    def check_url(self, url: str) -> None:
        """Any URL: nothing is resolved."""

    def open(self, url: str, protocols: Sequence[str], events: SocketEvents) -> None:
        sock = FakeSocket(len(self.sockets) + 1, url=url, protocols=tuple(protocols), events=events)
        self.sockets.append(sock)
        server = self.server
        if server is None:
            return
        if server.accepting:
            self.schedule(lambda: self._accept(sock, server))
        else:
            self.schedule(lambda: self._fail(sock, 1006, ""))

    def send(self, frame: Frame) -> None:
        sock = self.socket
        if sock is None or sock.state != "open":
            raise AssertionError(f"send({frame!r}) while no socket is open")
        sock.sent.append(frame)
        if sock.conn is not None and not sock.blackholed:
            sock.conn.handle(frame)

    def buffered_amount(self) -> int:
        sock = self.socket
        return sock.buffered_amount if sock is not None else 0

    def close(self, code: int, reason: str, detach: bool) -> None:
        sock = self.socket
        if sock is None:
            return
        if detach:
            self._kill(sock, code, reason)
            sock.detached = True
            return
        sock.state = "closing"
        sock.close_code, sock.close_reason = code, reason
        if not sock.blackholed:
            self.schedule(lambda: self._fail(sock, code, reason, clean=True))

    def dispose(self) -> None:
        sock = self.socket
        if sock is not None:
            self._kill(sock, 1000, "")
            sock.detached = True
        self.disposed = True

    # -- the test's controls

    def accept(self) -> None:
        """The current socket opens (when there is no server)."""
        sock = self._current()
        sock.state = "open"
        assert sock.events is not None
        sock.events.socket_opened()

    def deliver(self, frame: Frame) -> None:
        """The current socket receives ``frame``."""
        sock = self._current()
        assert sock.events is not None
        sock.events.socket_message(frame)

    def drop(self, code: int = 1006, reason: str = "") -> None:
        """The current socket closes from the other side (1006: the network broke)."""
        self._fail(self._current(), code, reason, clean=code != 1006)

    def blackhole(self) -> None:
        """The current socket stops carrying anything, both ways, and never closes by itself."""
        self._current().blackholed = True

    # -- machinery

    def _current(self) -> FakeSocket:
        sock = self.socket
        if sock is None:
            raise RuntimeError("there is no current socket")
        return sock

    def _accept(self, sock: FakeSocket, server: FakePyrtServer) -> None:
        if sock.state != "connecting" or sock.detached:
            return
        conn = server.accept(sock.protocols)
        sock.conn = conn
        sock.state = "open"

        def flush_later() -> None:
            self.schedule(lambda: self._flush(sock))

        conn.on_push = flush_later
        assert sock.events is not None
        sock.events.socket_opened()
        self._flush(sock)

    def _flush(self, sock: FakeSocket) -> None:
        conn = sock.conn
        while conn is not None and conn.outgoing and sock.state == "open" and not sock.detached:
            if sock.blackholed:
                return
            frame = conn.take()
            assert sock.events is not None
            sock.events.socket_message(frame)
        if conn is not None and conn.close_code is not None and not conn.outgoing and not sock.blackholed:
            self._fail(sock, conn.close_code, conn.close_reason, clean=True)

    def _fail(self, sock: FakeSocket, code: int, reason: str, clean: bool = False) -> None:
        if sock.state == "closed" or sock.detached:
            return
        self._kill(sock, code, reason)
        assert sock.events is not None
        sock.events.socket_closed(code, reason, clean)

    @staticmethod
    def _kill(sock: FakeSocket, code: int, reason: str) -> None:
        sock.state = "closed"
        sock.close_code = code
        sock.close_reason = reason
        if sock.conn is not None:
            sock.conn.closed(code)
