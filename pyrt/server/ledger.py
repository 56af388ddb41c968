"""What ``serve.py`` allows each TCP connection, each client address and the whole process,
below the application: the bookkeeping its protocols (:mod:`pyrt.server.uvicorn_private`) consult.

- **Connections.** At most ``max_connections`` sockets in all (the server never runs out of file
  descriptors), and ``per_ip`` per client address: over it, a request is answered 429 and the
  connection closed; more than :data:`OVERFLOW` sockets beyond it are reset at once. Peers listed
  as trusted proxies are not capped here (their clients are counted by the application instead).
- **Request heads and bodies** (:class:`HttpLimits`): each head complete within
  ``head_timeout`` seconds and ``max_head_bytes`` bytes (431), at most :data:`MAX_PIPELINE`
  pipelined requests per connection, each body complete within ``body_timeout`` seconds of its
  head (408).
- **Received WebSocket messages.** Received bytes are handed to the parser :data:`FEED_PIECE`
  bytes at a time, and no more while more than ``inbox_bytes`` of a connection's messages wait
  for (or are being handled by) the application, or more than ``address_inbox_bytes`` of its
  address's, or more than ``total_inbox_bytes`` of everyone's (:meth:`Ledger.inbox_full`).
- **CPU per address**: :attr:`Ledger.cpu`, a :class:`~pyrt.server.cpu_budget.CpuBudget`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyrt.server.cpu_budget import CpuBudget

__all__ = ["FEED_PIECE", "MAX_PIPELINE", "OVERFLOW", "HttpLimits", "Ledger"]

OVERFLOW = 64  # sockets beyond the per-address cap that still get a polite 429
MAX_PIPELINE = 16  # pipelined requests one connection may queue
FEED_PIECE = 4096  # received WebSocket bytes handed to the parser at a time


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-request limits (``0`` turns a timeout off)."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_head_bytes: int = 32 * 1024
    #: Bytes of received WebSocket messages waiting for the application before reading stops: per
    #: connection, per client address (not for trusted proxies), and for the whole process.
    inbox_bytes: int = 1024 * 1024
    address_inbox_bytes: int = 32 * 1024 * 1024
    total_inbox_bytes: int = 256 * 1024 * 1024
    #: A compressed message inflates to at most INFLATE_FLOOR or this many times its size (0: off).
    inflate_ratio: int = 32


class Ledger:
    """Open TCP connections per peer address and in all.

    :meth:`admit` returns ``"ok"``, ``"over"`` (over the per-address cap: answer 429 and close) or
    ``"refuse"`` (reset now). Every admitted transport is released exactly once by :meth:`release`
    (idempotent), whichever protocol owns it by then.
    """

    def __init__(
        self,
        max_connections: int,
        per_ip: int,
        trusted: Iterable[str] = (),
        *,
        address_inbox: int = 0,
        total_inbox: int = 0,
        cpu_share: float = 0.0,
        cpu_burst: float = 0.02,
    ) -> None:
        self.max_connections = max_connections
        #: The CPU budget of each client address (trusted proxies have none).
        self.cpu = CpuBudget(cpu_share, cpu_burst)
        self.per_ip = per_ip
        self.address_inbox = address_inbox
        self.total_inbox = total_inbox
        self._trusted_all = "*" in trusted
        self._trusted = [ipaddress.ip_network(t, strict=False) for t in trusted if t != "*"]
        self._open: dict[int, str] = {}  # id(transport) -> address
        self._per_ip: Counter[str] = Counter()
        self._inbox: Counter[str] = Counter()  # received bytes waiting for the app, per address
        self._inbox_total = 0
        self._waiting: dict[int, Callable[[], None]] = {}  # connections held back for room

    def __len__(self) -> int:
        return len(self._open)

    def count(self, address: str) -> int:
        return self._per_ip.get(address, 0)

    def trusted(self, address: str) -> bool:
        """Whether ``address`` is a configured proxy (its clients are capped by the application)."""
        if self._trusted_all:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def admit(self, transport: asyncio.BaseTransport) -> str:
        if self.max_connections and len(self._open) >= self.max_connections:
            return "refuse"
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        verdict = "ok"
        if self.per_ip and not self.trusted(address):
            already = self._per_ip[address]
            if already >= self.per_ip + OVERFLOW:
                return "refuse"
            if already >= self.per_ip:
                verdict = "over"
        self._open[id(transport)] = address
        self._per_ip[address] += 1
        return verdict

    # --- received bytes waiting for the application ---------------------------------------------

    def _address(self, transport: asyncio.BaseTransport) -> str:
        return self._open.get(id(transport), "unknown")

    def inbox_full(self, transport: asyncio.BaseTransport) -> bool:
        """Whether the address of ``transport`` (or the whole process) has no room left."""
        if self.total_inbox and self._inbox_total > self.total_inbox:
            return True
        address = self._address(transport)
        if not self.address_inbox or self.trusted(address):
            return False
        return self._inbox[address] > self.address_inbox

    def inbox_add(self, transport: asyncio.BaseTransport, size: int) -> None:
        self._inbox[self._address(transport)] += size
        self._inbox_total += size

    def inbox_remove(self, transport: asyncio.BaseTransport, size: int) -> None:
        """``size`` bytes were handled: wake connections that were held back for room."""
        if size <= 0:
            return
        address = self._address(transport)
        left = self._inbox[address] - size
        if left > 0:
            self._inbox[address] = left
        else:
            self._inbox.pop(address, None)
        self._inbox_total = max(0, self._inbox_total - size)
        if self._waiting:
            waiting, self._waiting = self._waiting, {}
            for wake in waiting.values():
                wake()

    def wait_for_room(self, transport: asyncio.BaseTransport, wake: Callable[[], None]) -> None:
        """Call ``wake`` once received bytes were handled somewhere (then check again)."""
        self._waiting[id(transport)] = wake

    # --- the CPU budget of each address -----------------------------------------------------------

    def cpu_address(self, transport: asyncio.BaseTransport) -> str | None:
        """The address whose budget ``transport``'s input is charged to (``None``: none)."""
        if not self.cpu.enabled:
            return None
        address = self._open.get(id(transport))
        return None if address is None or self.trusted(address) else address

    def release(self, transport: asyncio.BaseTransport) -> None:
        self._waiting.pop(id(transport), None)
        address = self._open.pop(id(transport), None)
        if address is None:
            return
        self.cpu.forget(address, id(transport))
        left = self._per_ip[address] - 1
        if left > 0:
            self._per_ip[address] = left
        else:
            del self._per_ip[address]
